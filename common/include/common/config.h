// Declared configuration: every TOML section a part reads is described by a Schema, a table of
// keys with their type, default and description (fluent-bit's config map, in spirit).
//
// Validation happens once, at start-up: an unknown key, a wrong type, a missing required key or a
// value out of range is refused with a message that names the file, the line and the key. The
// same table generates the reference documentation, so docs and behaviour cannot drift.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

namespace instrumeter::config {

enum class Type { kString, kInteger, kBoolean, kFloat, kStringArray, kTable, kTableArray };

using Default = std::variant<std::monostate, std::string, int64_t, bool, double>;

struct Key {
  std::string name;
  Type type = Type::kString;
  Default default_value;  // monostate: no default
  std::string description;
  bool required = false;
  // Inclusive bounds, checked for kInteger and kFloat.
  double min = std::numeric_limits<double>::lowest();
  double max = std::numeric_limits<double>::max();
  // For kString: if not empty, the value must be one of these.
  std::vector<std::string> one_of = {};
};

using Schema = std::vector<Key>;

// Reads and parses a TOML file; a syntax error names file, line and column.
Result<toml::table> ParseFile(const std::string& path);
Result<toml::table> ParseString(const std::string& text, const std::string& source_name);

// A validated view of one TOML table. Getters return the value or the schema default; asking for
// a key that is not in the schema is a programming error and aborts in debug builds.
class Section {
 public:
  // `where` names the section in messages, e.g. "agent.toml [mqtt]" or "agent.toml [[adapter]]
  // 'power'".
  static Result<Section> Make(const toml::table& table, const Schema& schema, std::string where);

  bool Has(const std::string& name) const;
  std::string String(const std::string& name) const;
  int64_t Integer(const std::string& name) const;
  bool Boolean(const std::string& name) const;
  double Float(const std::string& name) const;
  std::vector<std::string> StringArray(const std::string& name) const;
  // A sub-table (kTable) or the tables of an array (kTableArray), unvalidated: validate each with
  // its own schema through Make.
  const toml::table* Table(const std::string& name) const;
  std::vector<const toml::table*> TableArray(const std::string& name) const;

  // "agent.toml:12:3: [mqtt] key 'broker': <message>" (line when the key is present).
  Status Error(const std::string& name, const std::string& message) const;
  const std::string& where() const { return where_; }
  const toml::table& table() const { return *table_; }

 private:
  Section(const toml::table* table, const Schema* schema, std::string where)
      : table_(table), schema_(schema), where_(std::move(where)) {}
  const Key& Find(const std::string& name) const;

  const toml::table* table_;
  const Schema* schema_;  // must outlive the Section; schemas are static tables
  std::string where_;
};

// "file:line:col" of a node, or just "file".
std::string Location(const toml::node& node);

// A Markdown table of the keys: name, type, default, description.
std::string SchemaMarkdown(const Schema& schema);
const char* TypeName(Type type);

}  // namespace instrumeter::config
