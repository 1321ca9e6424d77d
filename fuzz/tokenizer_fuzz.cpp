// libFuzzer target: the embedded DeepSeek-V3 tokenizer on arbitrary bytes. It must never
// crash, and it checks the properties that hold for any input:
//  - invalid UTF-8 is an Error, never a crash; valid text round-trips: decode(encode(s)) == s;
//  - add_special_tokens adds exactly the BOS;
//  - the same bytes read as ids decode without crashing (unknown ids included), and the
//    streaming detokenizer's pieces add up to decode() of those ids.
// (Identity of the ids with the reference library is checked by tests/tokenizer/diff_tokenizers.py.)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

const dsi::Tokenizer& tokenizer() {
  static const dsi::Tokenizer tok = dsi::Tokenizer::embedded_default();
  return tok;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

void check_stream(const std::vector<int32_t>& ids, bool skip) {
  dsi::IncrementalDetokenizer stream(tokenizer(), skip);
  std::string text;
  for (int32_t id : ids) text += stream.push(id).text;
  text += stream.finish().text;
  check(text == tokenizer().decode(ids, skip), "streamed text == decode(ids)");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const dsi::Tokenizer& tok = tokenizer();
  if (dsi::utf8::is_valid(bytes)) {
    std::vector<int32_t> ids = tok.encode(bytes, false);
    check(tok.decode(ids, false) == bytes, "decode(encode(s)) == s");
    std::vector<int32_t> with_bos = tok.encode(bytes, true);
    check(with_bos.size() == ids.size() + 1 && with_bos[0] == *tok.bos_token_id() &&
              std::equal(ids.begin(), ids.end(), with_bos.begin() + 1),
          "add_special_tokens adds the BOS");
    check_stream(ids, false);
  } else {
    bool threw = false;
    try {
      tok.encode(bytes, false);
    } catch (const dsi::Error&) {
      threw = true;
    }
    check(threw, "invalid UTF-8 is an Error");
  }
  // The same bytes as ids: 3 bytes each, reaching past the end of the vocabulary.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 3 <= size; i += 3)
    ids.push_back(int32_t((uint32_t(data[i]) | uint32_t(data[i + 1]) << 8 | uint32_t(data[i + 2]) << 16) % 131072u));
  check_stream(ids, false);
  check_stream(ids, true);
  return 0;
}
