#pragma once
// JSON Schema -> a regex (regex.h) of the compact JSON texts (no whitespace) that satisfy it,
// so that grammar-constrained decoding emits only valid documents. Supported: type (one or a
// list), properties in their order with required / optional ones, additionalProperties (none
// are generated beyond the properties; an object without properties takes string keys with
// the additionalProperties schema, or any value), enum, const, items with minItems /
// maxItems, anyOf / oneOf (oneOf's exclusivity is not enforced), allOf of one schema, $ref
// into #/$defs or #/definitions (recursion up to kMaxRefDepth), strings with minLength /
// maxLength, pattern (the pattern's characters as written: JSON escapes inside it are not
// generated) and the formats date, time, date-time, uuid, email; integers (at most 16
// digits; numbers have exponents of at most two digits, so they fit a double; minimum / maximum: a range of at most 1000 values is exact, minimum >= 0 drops the
// sign) and numbers; boolean, null. A schema without a type is any JSON value: nesting up to
// kAnyDepth, strings of at most 32 characters (so that a model that never closes a string
// still ends in a valid document). Anything else is an Error naming the keyword.
#include <string>

#include "core/json.h"

namespace dsi::grammar {

constexpr int kMaxRefDepth = 4;
constexpr int kAnyDepth = 3;

std::string json_schema_regex(const Json& schema);

// Any JSON object (response_format json_object), within the bounds of "any JSON value" above.
std::string json_object_regex();

}  // namespace dsi::grammar
