#pragma once
// Python's str methods on UTF-8 strings, as chat templates call them (content.split(...),
// .strip(), ...). Indices and lengths count characters, as in Python.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsi::jinja::py {

// strip/lstrip/rstrip: `chars` empty optional means white space (str.isspace).
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// split(sep=None, maxsplit=-1); an empty sep is an Error, as in Python.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count);
// find/rfind return a character index or -1.
int64_t find(std::string_view s, std::string_view sub, bool reverse);
int64_t count(std::string_view s, std::string_view sub);
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);
// isdigit, isalpha, isalnum, isspace, islower, isupper.
bool is_class(std::string_view s, std::string_view which);

// Characters of s as separate strings.
std::vector<std::string> chars(std::string_view s);

}  // namespace dsi::jinja::py
