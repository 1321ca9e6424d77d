// Every way a checkpoint can be broken gives an Error naming the file and the tensor, and never
// reads out of bounds (these tests also run under AddressSanitizer).
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/test_paths.h"
#include "core/json.h"
#include "model/checkpoint.h"
#include "model/weight_map.h"
#include "model/weights.h"

namespace dsi {
namespace {

namespace fs = std::filesystem;

void write_raw(const std::string& path, const std::string& header, size_t data_bytes, uint64_t header_size_field = 0) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header_size_field ? header_size_field : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out << std::string(data_bytes, '\x01');
}

std::string error_opening(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_CONTAINS(msg, text) \
  EXPECT_NE((msg).find(text), std::string::npos) << "message was: '" << (msg) << "'"

TEST(Safetensors, ReadsAWellFormedFile) {
  test::TempDir dir;
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t b[2] = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)};
  write_safetensors(dir.file("x.safetensors"),
                    {{"a", DType::f32, {2, 3}, a}, {"b", DType::bf16, {2}, b}});
  SafetensorsFile f(dir.file("x.safetensors"));
  ASSERT_EQ(f.entries().size(), 2u);
  const auto* e = f.find("a");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(load_as_f32(e->data, e->dtype, 5), 6.0f);
  EXPECT_EQ(load_as_f32(f.find("b")->data, DType::bf16, 1), -2.0f);
}

TEST(Safetensors, TruncatedFile) {
  test::TempDir dir;
  std::ofstream(dir.file("t.safetensors")) << "abc";
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("t.safetensors")), "truncated safetensors file");
}

TEST(Safetensors, HeaderLongerThanFile) {
  test::TempDir dir;
  write_raw(dir.file("h.safetensors"), "{}", 0, 4096);
  std::string msg = error_opening(dir.file("h.safetensors"));
  EXPECT_ERROR_CONTAINS(msg, "h.safetensors");
  EXPECT_ERROR_CONTAINS(msg, "header size 4096 exceeds the file");
}

TEST(Safetensors, OffsetsPastTheEnd) {
  test::TempDir dir;
  write_raw(dir.file("o.safetensors"), R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  std::string msg = error_opening(dir.file("o.safetensors"));
  EXPECT_ERROR_CONTAINS(msg, "tensor w");
  EXPECT_ERROR_CONTAINS(msg, "outside the data section");
}

TEST(Safetensors, OverlappingTensors) {
  test::TempDir dir;
  write_raw(dir.file("v.safetensors"),
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
            16);
  std::string msg = error_opening(dir.file("v.safetensors"));
  EXPECT_ERROR_CONTAINS(msg, "overlap");
  EXPECT_ERROR_CONTAINS(msg, "a and b");
}

TEST(Safetensors, SizeDisagreesWithShape) {
  test::TempDir dir;
  write_raw(dir.file("s.safetensors"), R"({"w":{"dtype":"BF16","shape":[3,3],"data_offsets":[0,16]}})", 16);
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("s.safetensors")), "needs 18");
}

TEST(Safetensors, UnsupportedDtypeAndMalformedHeader) {
  test::TempDir dir;
  write_raw(dir.file("d.safetensors"), R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8);
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("d.safetensors")), "unsupported dtype F64");
  write_raw(dir.file("j.safetensors"), R"({"w":{"dtype":"F32")", 8);
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("j.safetensors")), "malformed JSON");
  write_raw(dir.file("n.safetensors"), R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 8);
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("n.safetensors")), "negative dimension");
  write_raw(dir.file("x.safetensors"), R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 8);
  EXPECT_ERROR_CONTAINS(error_opening(dir.file("x.safetensors")), "malformed data_offsets");
}

// ---- whole checkpoints, written from dummy weights of the V3 fixture's config -------------

struct TinyCheckpoint {
  ModelConfig config = ModelConfig::from_file(test::data_path("tiny-v3-fp8/config.json"));
  ModelWeights weights = make_dummy_weights(config, 7);

  // Writes every tensor (one shard, or two with an index), leaving out `skip`, optionally
  // overriding one tensor's shape.
  void write(const std::string& dir, const std::string& skip = "", const std::string& reshape = "") {
    auto table = weight_table(config, &weights);
    std::vector<SafetensorsTensorOut> shard[2];
    std::vector<std::vector<int64_t>> shapes;
    shapes.reserve(table.size() * 2);
    Json map = Json::object();
    for (size_t i = 0; i < table.size(); ++i) {
      const auto& s = table[i];
      if (s.name == skip) continue;
      auto& out = shard[i % 2];
      std::string file = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
      if (s.vector) {
        out.push_back({s.name, DType::f32, s.shape, s.vector->data});
      } else {
        shapes.push_back(s.shape);
        if (s.name == reshape) shapes.back()[0] -= 1;  // one row short (reads stay inside the buffer)
        out.push_back({s.name, s.weight->w.dtype, shapes.back(), s.weight->w.data});
        if (s.weight->quantized() && s.name + "_scale_inv" != skip) {
          out.push_back({s.name + "_scale_inv", DType::f32, {s.weight->scale.rows, s.weight->scale.cols},
                         s.weight->scale.data});
          map[s.name + "_scale_inv"] = file;
        }
      }
      map[s.name] = file;
    }
    fs::copy_file(test::data_path("tiny-v3-fp8/config.json"), dir + "/config.json");
    write_safetensors(dir + "/model-00001-of-00002.safetensors", shard[0]);
    write_safetensors(dir + "/model-00002-of-00002.safetensors", shard[1]);
    std::ofstream(dir + "/model.safetensors.index.json") << Json{{"weight_map", map}}.dump();
  }
};

std::string error_loading(const ModelConfig& c, const std::string& dir) {
  try {
    load_checkpoint_weights(c, dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, LoadsWhatItWrote) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string());
  auto w = load_checkpoint_weights(ck.config, dir.path().string());
  const auto& kv_b = w.layers[1].attn.kv_b;
  EXPECT_EQ(kv_b.w.dtype, DType::f8_e4m3);
  EXPECT_EQ(kv_b.at(5, 7), ck.weights.layers[1].attn.kv_b.at(5, 7));
  EXPECT_EQ(w.layers[2].moe->experts.size(), 16u);
}

TEST(Checkpoint, MissingTensorIsNamed) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string(), "model.layers.2.mlp.experts.5.up_proj.weight");
  std::string msg = error_loading(ck.config, dir.path().string());
  // The index no longer lists it either, so the model's own expectation catches it.
  EXPECT_ERROR_CONTAINS(msg, "model.layers.2.mlp.experts.5.up_proj.weight is missing");
}

TEST(Checkpoint, MissingScaleIsNamed) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string(), "model.layers.1.self_attn.o_proj.weight_scale_inv");
  EXPECT_ERROR_CONTAINS(error_loading(ck.config, dir.path().string()),
                        "model.layers.1.self_attn.o_proj.weight_scale_inv");
}

TEST(Checkpoint, WrongShapeIsNamed) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string(), "", "model.layers.0.mlp.down_proj.weight");
  std::string msg = error_loading(ck.config, dir.path().string());
  EXPECT_ERROR_CONTAINS(msg, "model.layers.0.mlp.down_proj.weight has shape [255, 320], expected [256, 320]");
}

TEST(Checkpoint, IndexNamingAMissingShard) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string());
  fs::remove(dir.file("model-00002-of-00002.safetensors"));
  EXPECT_ERROR_CONTAINS(error_loading(ck.config, dir.path().string()), "model-00002-of-00002.safetensors");
}

TEST(Checkpoint, TruncatedShard) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string());
  auto shard = dir.file("model-00001-of-00002.safetensors");
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  std::string msg = error_loading(ck.config, dir.path().string());
  EXPECT_ERROR_CONTAINS(msg, "model-00001-of-00002.safetensors");
  EXPECT_ERROR_CONTAINS(msg, "outside the data section");
}

TEST(Checkpoint, ConfigThatDisagreesWithTheWeights) {
  TinyCheckpoint ck;
  test::TempDir dir;
  ck.write(dir.path().string());
  ModelConfig wider = ck.config;
  wider.moe_intermediate_size = 128;
  EXPECT_ERROR_CONTAINS(error_loading(wider, dir.path().string()), "expected [128, 256] from config.json");
  ModelConfig unquantised = ck.config;
  unquantised.quantization.reset();
  EXPECT_ERROR_CONTAINS(error_loading(unquantised, dir.path().string()), "no quantization_config");
}

TEST(Checkpoint, TheFixturesLoad) {
  for (const char* name : {"tiny-v2-lite", "tiny-v3-fp8"}) {
    auto c = ModelConfig::from_file(test::data_path(std::string(name) + "/config.json"));
    auto w = load_checkpoint_weights(c, test::data_path(name));
    EXPECT_EQ(int(w.layers.size()), c.n_layers) << name;
  }
}

}  // namespace
}  // namespace dsi
