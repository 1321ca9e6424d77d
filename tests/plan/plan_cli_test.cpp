// The real `dsinfer plan` binary (DSINFER_BIN): --json output, the issue's fits, --help, and
// bad input turning into a clear error and a non-zero exit.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/test_paths.h"
#include "core/json.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs dsinfer with args (already shell-quoted) from `cwd`.
Result run(const std::string& args, const fs::path& cwd = fs::current_path()) {
  const std::string bin = dsi::test::dsinfer_bin();
  const fs::path dir = fs::temp_directory_path() / ("dsinfer_plan_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cmd = "cd '" + cwd.string() + "' && '" + bin + "' " + args + " >'" + (dir / "out").string() +
                          "' 2>'" + (dir / "err").string() + "'";
  Result r;
  int status = std::system(cmd.c_str());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  fs::remove_all(dir);
  return r;
}

dsi::Json run_json(const std::string& args) {
  Result r = run(args + " --json");
  EXPECT_EQ(r.rc, 0) << r.err;
  return dsi::parse_json(r.out, "dsinfer plan --json");
}

TEST(PlanCli, JsonForV3OnEightH200Fits) {
  dsi::Json j = run_json("plan --model deepseek-v3 --gpus 8xH200");
  EXPECT_EQ(j["total_params"], 671026419200);
  EXPECT_EQ(j["kv_bytes_per_token"], 70272);
  EXPECT_TRUE(j["fits"].get<bool>());
  ASSERT_TRUE(j["recommended"].is_string());
  bool any = false;
  for (const dsi::Json& l : j["layouts"]) {
    for (const char* k : {"tp", "ep", "pp", "bytes_per_gpu", "fits", "max_concurrent_seqs", "comm_bytes_per_token"})
      EXPECT_TRUE(l.contains(k)) << k;
    any |= l["fits"].get<bool>();
  }
  EXPECT_TRUE(any);
}

TEST(PlanCli, TheIssuesFitCases) {
  dsi::Json h100 = run_json("plan --model deepseek-v3 --weights fp8 --gpus 8xH100-80GB");
  EXPECT_FALSE(h100["fits"].get<bool>());
  EXPECT_TRUE(h100["recommended"].is_null());
  EXPECT_TRUE(run_json("plan --model deepseek-v2-lite --weights bf16 --gpus 1xH100-80GB")["fits"].get<bool>());
  EXPECT_TRUE(run_json("plan --model deepseek-v2 --weights bf16 --gpus 8xH100-80GB")["fits"].get<bool>());
}

TEST(PlanCli, OptionsReachThePlan) {
  dsi::Json j = run_json("plan --model deepseek-v2-lite --gpus 2x96GB --context 4096 --concurrency 8 "
                         "--kv-dtype fp8 --lora-rank 8 --nodes 2");
  EXPECT_EQ(j["kv_bytes_per_token"], 27 * 576);
  EXPECT_EQ(j["request"]["context"], 4096);
  EXPECT_EQ(j["gpus"]["n_gpus"], 4);
  EXPECT_EQ(j["finetune"]["lora_params"].get<int64_t>() % 8, 0);
}

TEST(PlanCli, BuiltinModelsNeedNoFilesAround) {
  Result r = run("plan --model deepseek-r1 --gpus 8xH20", fs::temp_directory_path());
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Recommended: "), std::string::npos);
  EXPECT_NE(r.out.find("deepseek-ai/DeepSeek-R1"), std::string::npos);
}

TEST(PlanCli, HelpDocumentsEveryFlag) {
  Result r = run("plan --help");
  EXPECT_EQ(r.rc, 0);
  for (const char* flag : {"--model", "--gpus", "--nodes", "--context", "--concurrency", "--weights", "--kv-dtype",
                           "--max-num-batched-tokens", "--with-mtp", "--calibration", "--train-seq-len",
                           "--micro-batch", "--lora-rank", "--json"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

void expect_error(const std::string& args, const std::string& text) {
  Result r = run(args);
  EXPECT_NE(r.rc, 0) << args;
  EXPECT_NE(r.err.find(text), std::string::npos) << args << "\nstderr: " << r.err;
  EXPECT_TRUE(r.out.empty()) << args;
}

TEST(PlanCli, BadInputIsAClearError) {
  expect_error("plan --model deepseek-v3 --gpus 8xB300X", "error: --gpus: unknown GPU 'B300X'");
  expect_error("plan --model deepseek-v3 --gpus H200", "is not COUNTxNAME");
  expect_error("plan --model deepseek-v3 --gpus 8xH200 --weights fp16", "--weights fp16: unknown weight dtype");
  expect_error("plan --model deepseek-v3 --gpus 8xH200 --context 0", "--context 0");
  expect_error("plan --model /nonexistent/model --gpus 8xH200", "no such file or folder");
  expect_error("plan --model ../assets/gpus.json --gpus 8xH200", "not a DeepSeek config.json");
  expect_error("plan --model deepseek-v3 --gpus 8xH200 --calibration /nonexistent.json", "/nonexistent.json");
  expect_error("plan --gpus 8xH200", "--model");
}

TEST(PlanCli, CalibrationFileChangesTheOverheads) {
  const fs::path cal = fs::temp_directory_path() / "dsinfer_plan_cal.json";
  std::ofstream(cal) << R"({"cuda_graphs_mib": 0, "memory_utilization": 0.95})";
  dsi::Json base = run_json("plan --model deepseek-v2-lite --gpus 1xH100-80GB");
  dsi::Json tuned = run_json("plan --model deepseek-v2-lite --gpus 1xH100-80GB --calibration " + cal.string());
  EXPECT_EQ(base["layouts"][0]["overhead_bytes_per_gpu"].get<int64_t>() -
                tuned["layouts"][0]["overhead_bytes_per_gpu"].get<int64_t>(),
            int64_t(1024) << 20);
  EXPECT_GT(tuned["layouts"][0]["max_concurrent_seqs"], base["layouts"][0]["max_concurrent_seqs"]);
  std::ofstream(cal) << R"({"cuda_graph_mib": 0})";
  expect_error("plan --model deepseek-v2-lite --gpus 1xH100-80GB --calibration " + cal.string(),
               "unknown calibration key 'cuda_graph_mib'");
  fs::remove(cal);
}

}  // namespace
