#include "server/prometheus_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dsi::server {

std::string prometheus_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

std::string prometheus_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {
  std::sort(upper_bounds_.begin(), upper_bounds_.end());
}

void Histogram::observe(double value) {
  // Prometheus buckets are inclusive upper bounds: value <= le.
  size_t i = size_t(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  auto it = std::back_inserter(out);
  const std::string lead = labels.empty() ? std::string() : fmt::format("{},", labels);
  const std::string braces = labels.empty() ? std::string() : fmt::format("{{{}}}", labels);
  int64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    fmt::format_to(it, "{}_bucket{{{}le=\"{}\"}} {}\n", name, lead, prometheus_number(upper_bounds_[i]), cumulative);
  }
  cumulative += counts_.back();
  fmt::format_to(it, "{}_bucket{{{}le=\"+Inf\"}} {}\n{}_sum{} {}\n{}_count{} {}\n", name, lead, cumulative, name, braces,
                 prometheus_number(sum_), name, braces, count_);
}

Exposition::Exposition(const std::string& model_name) {
  const std::string m = prometheus_label_value(model_name);
  model_labels_ = fmt::format("model_name=\"{}\"", m);
  vllm_labels_ = fmt::format("engine=\"0\",model_name=\"{}\"", m);
  base_ = &model_labels_;
  out_.reserve(16384);
}

void Exposition::family(std::string_view name, const char* type, const char* help) {
  base_ = name.substr(0, 5) == "vllm:" ? &vllm_labels_ : &model_labels_;
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Exposition::sample(std::string_view name, double value, std::string_view labels) {
  if (labels.empty()) fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, *base_, prometheus_number(value));
  else fmt::format_to(std::back_inserter(out_), "{}{{{},{}}} {}\n", name, *base_, labels, prometheus_number(value));
}

void Exposition::scalar(std::string_view name, const char* type, const char* help, double value) {
  family(name, type, help);
  sample(name, value);
}

void Exposition::histogram(std::string_view name, const char* help, const Histogram& h) {
  family(name, "histogram", help);
  h.render(out_, name, *base_);
}

}  // namespace dsi::server
