#include "adapter_set.h"

namespace instrumeter::agent {
namespace {

class CollectingSink : public adapters::ObservationSink {
 public:
  void Report(adapters::Observation observation) override {
    observations.push_back(std::move(observation));
  }
  std::vector<adapters::Observation> observations;
};

}  // namespace

Result<std::unique_ptr<AdapterSet>> AdapterSet::Create(const AgentConfig& config,
                                                       const Clock* clock, Logger log) {
  std::unique_ptr<AdapterSet> set(new AdapterSet(std::move(log)));
  for (const AdapterSpec& spec : config.adapters) {
    const std::string location = config::Location(*spec.table) + ": " + spec.where;
    auto section = config::Section::Make(*spec.table, spec.schema, spec.where);
    if (!section.ok()) return section.status();
    adapters::AdapterContext context{spec.name, clock, config.state_dir};
    Instance instance{spec.name, spec.type.name, spec.type.make(context)};
    if (instance.adapter == nullptr)
      return Status::Internal(location + ": adapter type '" + spec.type.name + "' made nothing");
    Status st = instance.adapter->Init(*section);
    // Init errors from Section::Error already carry file, line and section; others get them here.
    if (!st.ok()) return st.message().rfind(config.path, 0) == 0 ? st : st.WithContext(location);
    set->instances_.push_back(std::move(instance));
  }
  return set;
}

AdapterSet::~AdapterSet() { Stop(); }

void AdapterSet::Note(Instance& instance, const std::string& error) {
  if (error.empty()) {
    if (!instance.error.empty() || !instance.polled)
      log_->info("adapter '{}' ({}) reads", instance.name, instance.type);
  } else {
    ++instance.errors_total;
    // Logged when the failure starts or changes, not at every poll.
    if (error != instance.error)
      log_->warn("adapter '{}' ({}): {}", instance.name, instance.type, error);
  }
  instance.error = error;
  instance.polled = true;
}

std::vector<Opinion> AdapterSet::Poll(std::vector<AdapterReading>* readings) {
  std::vector<Opinion> opinions;
  for (Instance& instance : instances_) {
    Opinion opinion{instance.name, std::nullopt, {}};
    CollectingSink sink;
    Status st;
    if (!instance.started) {
      st = instance.adapter->Start();
      if (st.ok())
        instance.started = true;
      else
        st = st.WithContext("start");
    }
    if (st.ok()) st = instance.adapter->Poll(sink);
    if (st.ok()) {
      for (const adapters::Observation& o : sink.observations) {
        if (o.kind == adapters::Observation::Kind::kState) {
          opinion.state = o.state;
          opinion.why = o.text;
        } else if (o.kind == adapters::Observation::Kind::kIdentity) {
          instance.identity = o.text;
        }
      }
      if (!opinion.state) opinion.why = "no state reported";
    } else {
      opinion.why = st.message().empty() ? Status::CodeName(st.code()) : st.message();
    }
    Note(instance, opinion.state ? std::string() : opinion.why);
    if (readings != nullptr)
      readings->push_back({instance.name, instance.type, st, std::move(sink.observations)});
    opinions.push_back(std::move(opinion));
  }
  return opinions;
}

std::vector<v1::AdapterHealth> AdapterSet::Health() const {
  std::vector<v1::AdapterHealth> out;
  for (const Instance& instance : instances_) {
    v1::AdapterHealth h;
    h.set_name(instance.name);
    h.set_type(instance.type);
    h.set_ok(instance.polled && instance.error.empty());
    h.set_error(instance.polled ? instance.error : "not polled yet");
    h.set_identity(instance.identity);
    h.set_errors_total(instance.errors_total);
    out.push_back(std::move(h));
  }
  return out;
}

void AdapterSet::Stop() {
  for (Instance& instance : instances_) {
    if (!instance.started) continue;
    instance.adapter->Stop();
    instance.started = false;
  }
}

}  // namespace instrumeter::agent
