#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsi {
namespace {

std::vector<std::string> byte_level_chain(std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& t : tokens)
    if (!byte_level::append_decoded(bytes, t)) bytes += t;
  return {utf8::lossy(bytes)};
}

// "<0x41>" -> 0x41; -1 for anything else.
int byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') v += c - '0';
    else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v += c - 'a' + 10;
    else return -1;
  }
  return v;
}

std::vector<std::string> byte_fallback_chain(std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string pending;  // consecutive byte tokens
  size_t n_pending = 0;
  auto flush = [&] {
    if (n_pending == 0) return;
    if (utf8::is_valid(pending)) {
      out.push_back(pending);
    } else {
      std::string bad;
      for (size_t i = 0; i < n_pending; ++i) utf8::append(bad, utf8::replacement_char);
      out.push_back(bad);
    }
    pending.clear();
    n_pending = 0;
  };
  for (std::string& t : tokens) {
    int v = byte_fallback_value(t);
    if (v >= 0) {
      pending += char(v);
      ++n_pending;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

void strip_token(std::string& t, std::string_view c, size_t start, size_t stop) {
  size_t begin = 0;
  for (size_t i = 0; i < start && t.compare(begin, c.size(), c) == 0 && !c.empty(); ++i) begin += c.size();
  size_t end = t.size();
  for (size_t i = 0; i < stop && end >= begin + c.size() && !c.empty() &&
                     t.compare(end - c.size(), c.size(), c) == 0;
       ++i)
    end -= c.size();
  t = t.substr(begin, end - begin);
}

}  // namespace

Decoder Decoder::from_json(const Json& j, std::string_view what) {
  Decoder d;
  if (j.is_null()) return d;
  d.present_ = true;
  d.add_from_json(j, std::string(what));
  return d;
}

void Decoder::add_from_json(const Json& j, const std::string& what) {
  std::string type = json_get<std::string>(j, "type", what);
  if (type == "Sequence") {
    const Json& list = j.contains("decoders") ? j["decoders"] : Json();
    if (!list.is_array()) fail("{}: Sequence needs a 'decoders' array", what);
    for (size_t i = 0; i < list.size(); ++i) add_from_json(list[i], fmt::format("{}.decoders[{}]", what, i));
  } else if (type == "ByteLevel") {
    steps_.push_back(ByteLevel{});
  } else if (type == "Replace") {
    if (!j.contains("pattern")) fail("{}: missing field 'pattern'", what);
    steps_.push_back(Replace{Pattern::from_json(j["pattern"], what + ".pattern"), json_get<std::string>(j, "content", what)});
  } else if (type == "Strip") {
    std::string content = json_get<std::string>(j, "content", what);
    auto start = json_get<int64_t>(j, "start", what);
    auto stop = json_get<int64_t>(j, "stop", what);
    if (start < 0 || stop < 0) fail("{}: negative start/stop", what);
    steps_.push_back(Strip{content, size_t(start), size_t(stop)});
  } else if (type == "Fuse") {
    steps_.push_back(Fuse{});
  } else if (type == "ByteFallback") {
    steps_.push_back(ByteFallback{});
  } else {
    fail("{}: unsupported decoder type '{}' (supported: Sequence, ByteLevel, Replace, Strip, Fuse, ByteFallback)",
         what, type);
  }
}

std::string Decoder::decode(std::vector<std::string> tokens, RegexScratch& scratch) const {
  if (!present_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const Step& step : steps_) {
    if (std::holds_alternative<ByteLevel>(step)) {
      tokens = byte_level_chain(tokens);
    } else if (const auto* r = std::get_if<Replace>(&step)) {
      if (r->pattern.is_empty_literal()) continue;
      for (std::string& t : tokens) {
        std::string out;
        size_t prev = 0;
        r->pattern.regex().for_each_match(t, scratch, [&](size_t b, size_t e) {
          out.append(t, prev, b - prev);
          out += r->content;
          prev = e;
        });
        out.append(t, prev, std::string::npos);
        t = std::move(out);
      }
    } else if (const auto* s = std::get_if<Strip>(&step)) {
      for (std::string& t : tokens) strip_token(t, s->content, s->start, s->stop);
    } else if (std::holds_alternative<Fuse>(step)) {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens.assign(1, std::move(all));
    } else if (std::holds_alternative<ByteFallback>(step)) {
      tokens = byte_fallback_chain(tokens);
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace dsi
