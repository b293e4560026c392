#include "common/config.h"

#include <cassert>
#include <sstream>

namespace instrumeter::config {
namespace {

bool TypeMatches(const toml::node& node, Type type) {
  switch (type) {
    case Type::kString:
      return node.is_string();
    case Type::kInteger:
      return node.is_integer();
    case Type::kBoolean:
      return node.is_boolean();
    case Type::kFloat:
      return node.is_floating_point() || node.is_integer();
    case Type::kStringArray: {
      const toml::array* arr = node.as_array();
      if (arr == nullptr) return false;
      for (const auto& el : *arr)
        if (!el.is_string()) return false;
      return true;
    }
    case Type::kTable:
      return node.is_table();
    case Type::kTableArray:
      return node.is_array_of_tables();
  }
  return false;
}

std::string DefaultText(const Default& d) {
  struct Visitor {
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(const std::string& s) const { return "\"" + s + "\""; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(double v) const {
      std::ostringstream out;
      out << v;
      return out.str();
    }
  };
  return std::visit(Visitor{}, d);
}

std::string FormatParseError(const toml::parse_error& err, const std::string& source) {
  std::ostringstream out;
  out << source << ":" << err.source().begin.line << ":" << err.source().begin.column << ": "
      << err.description();
  return out.str();
}

}  // namespace

const char* TypeName(Type type) {
  switch (type) {
    case Type::kString:
      return "string";
    case Type::kInteger:
      return "integer";
    case Type::kBoolean:
      return "boolean";
    case Type::kFloat:
      return "number";
    case Type::kStringArray:
      return "array of strings";
    case Type::kTable:
      return "table";
    case Type::kTableArray:
      return "array of tables";
  }
  return "?";
}

std::string Location(const toml::node& node) {
  const toml::source_region& src = node.source();
  std::ostringstream out;
  out << (src.path ? *src.path : std::string("<config>"));
  if (src.begin.line > 0) out << ":" << src.begin.line << ":" << src.begin.column;
  return out.str();
}

Result<toml::table> ParseFile(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& err) {
    const std::string desc(err.description());
    if (desc.find("File could not be opened") != std::string::npos)
      return Status::NotFound("cannot read config file " + path);
    return Status::InvalidArgument(FormatParseError(err, path));
  }
}

Result<toml::table> ParseString(const std::string& text, const std::string& source_name) {
  try {
    return toml::parse(text, source_name);
  } catch (const toml::parse_error& err) {
    return Status::InvalidArgument(FormatParseError(err, source_name));
  }
}

Result<Section> Section::Make(const toml::table& table, const Schema& schema, std::string where) {
  Section section(&table, &schema, std::move(where));
  for (const auto& [k, node] : table) {
    const std::string name(k.str());
    const Key* key = nullptr;
    for (const Key& candidate : schema)
      if (candidate.name == name) key = &candidate;
    if (key == nullptr) {
      std::string known;
      for (const Key& candidate : schema) known += (known.empty() ? "" : ", ") + candidate.name;
      return Status::InvalidArgument(Location(node) + ": " + section.where_ + ": unknown key '" +
                                     name + "' (known keys: " + known + ")");
    }
    if (!TypeMatches(node, key->type))
      return section.Error(name, std::string("must be ") + TypeName(key->type));
    if (key->type == Type::kInteger || key->type == Type::kFloat) {
      const double v = node.value<double>().value_or(0);
      if (v < key->min || v > key->max) {
        std::ostringstream range;
        range << "value " << v << " is out of range [" << key->min << ", " << key->max << "]";
        return section.Error(name, range.str());
      }
    }
    if (key->type == Type::kString && !key->one_of.empty()) {
      const std::string v = node.value<std::string>().value_or("");
      bool found = false;
      std::string options;
      for (const std::string& o : key->one_of) {
        found = found || o == v;
        options += (options.empty() ? "" : ", ") + o;
      }
      if (!found) return section.Error(name, "'" + v + "' is not one of: " + options);
    }
  }
  for (const Key& key : schema)
    if (key.required && !table.contains(key.name))
      return Status::InvalidArgument(section.where_ + ": required key '" + key.name +
                                     "' is missing");
  return section;
}

const Key& Section::Find(const std::string& name) const {
  for (const Key& key : *schema_)
    if (key.name == name) return key;
  assert(false && "config key not in schema");
  static const Key kMissing;
  return kMissing;
}

bool Section::Has(const std::string& name) const { return table_->contains(name); }

std::string Section::String(const std::string& name) const {
  const Key& key = Find(name);
  if (auto v = (*table_)[name].value<std::string>()) return *v;
  if (auto* d = std::get_if<std::string>(&key.default_value)) return *d;
  return {};
}

int64_t Section::Integer(const std::string& name) const {
  const Key& key = Find(name);
  if (auto v = (*table_)[name].value<int64_t>()) return *v;
  if (auto* d = std::get_if<int64_t>(&key.default_value)) return *d;
  return 0;
}

bool Section::Boolean(const std::string& name) const {
  const Key& key = Find(name);
  if (auto v = (*table_)[name].value<bool>()) return *v;
  if (auto* d = std::get_if<bool>(&key.default_value)) return *d;
  return false;
}

double Section::Float(const std::string& name) const {
  const Key& key = Find(name);
  if (auto v = (*table_)[name].value<double>()) return *v;
  if (auto* d = std::get_if<double>(&key.default_value)) return *d;
  if (auto* i = std::get_if<int64_t>(&key.default_value)) return static_cast<double>(*i);
  return 0;
}

std::vector<std::string> Section::StringArray(const std::string& name) const {
  Find(name);
  std::vector<std::string> out;
  if (const toml::array* arr = (*table_)[name].as_array())
    for (const auto& el : *arr) out.push_back(el.value<std::string>().value_or(""));
  return out;
}

const toml::table* Section::Table(const std::string& name) const {
  Find(name);
  return (*table_)[name].as_table();
}

std::vector<const toml::table*> Section::TableArray(const std::string& name) const {
  Find(name);
  std::vector<const toml::table*> out;
  if (const toml::array* arr = (*table_)[name].as_array())
    for (const auto& el : *arr)
      if (const toml::table* t = el.as_table()) out.push_back(t);
  return out;
}

Status Section::Error(const std::string& name, const std::string& message) const {
  // A key left at its default has no line of its own: its section's is named instead.
  const toml::node* node = table_->get(name);
  return Status::InvalidArgument(Location(node != nullptr ? *node : *table_) + ": " + where_ +
                                 ": key '" + name + "': " + message);
}

std::string SchemaMarkdown(const Schema& schema) {
  std::ostringstream out;
  out << "| key | type | default | description |\n|---|---|---|---|\n";
  for (const Key& key : schema) {
    std::string def = key.required ? "(required)" : DefaultText(key.default_value);
    if (!key.one_of.empty()) {
      std::string options;
      for (const std::string& o : key.one_of) options += (options.empty() ? "" : ", ") + o;
      def += (def.empty() ? "" : "; ") + std::string("one of ") + options;
    }
    out << "| `" << key.name << "` | " << TypeName(key.type) << " | " << def << " | "
        << key.description << " |\n";
  }
  return out.str();
}

}  // namespace instrumeter::config
