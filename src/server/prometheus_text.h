#pragma once
// Writing the Prometheus text exposition format (0.0.4): metric families with HELP and TYPE,
// samples with labels, and cumulative histograms. Every sample carries the family's base
// labels (model_name; vLLM's families also engine="0", as vLLM labels them).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsi::server {

// A cumulative histogram with fixed upper bounds (Prometheus "le" buckets). Not thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines; `labels` (`a="b",c="d"`, may be empty) go
  // before le. HELP and TYPE are the caller's.
  void render(std::string& out, std::string_view name, std::string_view labels = {}) const;
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; one more for +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// Prometheus floats: shortest round-trip form, and +Inf / NaN spelled its way.
std::string prometheus_number(double v);
// A label value with \, " and newline escaped.
std::string prometheus_label_value(std::string_view v);

class Exposition {
 public:
  explicit Exposition(const std::string& model_name);
  // Starts a family; its samples follow. Names starting "vllm:" get vLLM's base labels.
  void family(std::string_view name, const char* type, const char* help);
  // One sample of the current family: `name` is the family's, or with a suffix for counters'
  // and histograms' parts; `labels` without braces, added after the base labels.
  void sample(std::string_view name, double value, std::string_view labels = {});
  // A whole single-sample family.
  void scalar(std::string_view name, const char* type, const char* help, double value);
  // A whole histogram family.
  void histogram(std::string_view name, const char* help, const Histogram& h);
  std::string& text() { return out_; }

 private:
  std::string out_;
  std::string model_labels_, vllm_labels_;
  const std::string* base_ = nullptr;  // the current family's base labels
};

}  // namespace dsi::server
