#include "bench/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "bench/svg.h"
#include "core/error.h"

namespace dsi::bench {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr size_t kNumColors = sizeof(kPalette) / sizeof(kPalette[0]);

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool markers = false;
};

// Ticks at 1, 2 or 5 times a power of ten, about n of them over [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int n) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / n, mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

std::string tick_label(double v) {
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) return fmt::format("{:.0e}", v);
  return fmt::format("{:g}", std::round(v * 1e6) / 1e6);
}

struct Frame {
  double x, y, w, h;  // the plotting area
  double x0, x1, y0, y1;
  double px(double v) const { return x + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * w; }
  double py(double v) const { return y + h - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * h; }
};

void axes(Svg& svg, const Frame& f, const std::string& title, const std::string& xlabel, const std::string& ylabel) {
  svg.text(f.x + f.w / 2, f.y - 14, title, {{"font-size", "15"}, {"font-weight", "bold"}}, "middle");
  svg.rect(f.x, f.y, f.w, f.h, {{"fill", "none"}, {"stroke", "#444"}});
  for (double t : nice_ticks(f.x0, f.x1, 6)) {
    svg.line(f.px(t), f.y, f.px(t), f.y + f.h, {{"stroke", "#e4e4e4"}});
    svg.text(f.px(t), f.y + f.h + 16, tick_label(t), {}, "middle");
  }
  for (double t : nice_ticks(f.y0, f.y1, 5)) {
    svg.line(f.x, f.py(t), f.x + f.w, f.py(t), {{"stroke", "#e4e4e4"}});
    svg.text(f.x - 6, f.py(t) + 4, tick_label(t), {}, "end");
  }
  svg.text(f.x + f.w / 2, f.y + f.h + 36, xlabel, {}, "middle");
  svg.text(f.x - 48, f.y + f.h / 2, ylabel, {}, "middle", -90);
}

// An XY chart in the box (x, y, w, h) with its title, axes and legend.
void xy_chart(Svg& svg, double x, double y, double w, double h, const std::string& title, const std::string& xlabel,
              const std::string& ylabel, const std::vector<Series>& series, const std::string& chart_id,
              bool legend_top_left) {
  Frame f{x + 70, y + 40, w - 100, h - 95, 0, 1, 0, 1};
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymax = 0;
  for (const auto& s : series)
    for (const auto& [px, py] : s.points) {
      xmin = std::min(xmin, px);
      xmax = std::max(xmax, px);
      ymax = std::max(ymax, py);
    }
  if (std::isinf(xmin)) {
    axes(svg, f, title, xlabel, ylabel);
    svg.text(f.x + f.w / 2, f.y + f.h / 2, "no data", {{"fill", "#888"}}, "middle");
    return;
  }
  const double pad = xmax > xmin ? 0.04 * (xmax - xmin) : std::max(1.0, std::abs(xmin) * 0.1);
  f.x0 = std::max(0.0, xmin - pad);
  f.x1 = xmax + pad;
  f.y1 = ymax > 0 ? ymax * 1.08 : 1;
  axes(svg, f, title, xlabel, ylabel);
  svg.open_group({{"class", "chart"}, {"data-chart", chart_id}});
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* color = kPalette[i % kNumColors];
    std::vector<std::pair<double, double>> pts;
    for (const auto& [px, py] : s.points) pts.emplace_back(f.px(px), f.py(py));
    svg.polyline(pts, {{"class", "series"}, {"data-series", s.name}, {"stroke", color}, {"stroke-width", "2"}});
    if (s.markers)
      for (const auto& [px, py] : pts) svg.circle(px, py, 3.5, {{"fill", color}});
    // Legend inside the frame, on a white box, in the corner the curves leave free.
    size_t longest = 0;
    for (const auto& t : series) longest = std::max(longest, t.name.size());
    const double lw = 72 + 7.0 * double(longest), lh = 16 * double(series.size()) + 8;
    const double bx = legend_top_left ? f.x + 8 : f.x + f.w - lw - 8, by = legend_top_left ? f.y + 8 : f.y + f.h - lh - 8;
    if (i == 0) svg.rect(bx, by, lw, lh, {{"fill", "white"}, {"fill-opacity", "0.85"}, {"stroke", "#bbb"}});
    const double lx = bx - 30, ly = by + 16 + 16 * double(i);
    svg.line(lx + 38, ly - 4, lx + 58, ly - 4, {{"stroke", color}, {"stroke-width", "3"}});
    svg.text(lx + 64, ly, s.name, {});
  }
  svg.close_group();
}

std::vector<std::pair<double, double>> cdf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::vector<std::pair<double, double>> out;
  const size_t n = v.size(), stride = std::max<size_t>(1, n / 400);
  for (size_t i = 0; i < n; i += stride) out.emplace_back(v[i], double(i + 1) / double(n));
  if (n && out.back().second < 1) out.emplace_back(v.back(), 1.0);
  return out;
}

double number_at(const Json& j, const char* key, const char* sub) {
  if (!j.contains(key)) return std::nan("");
  const Json& v = sub ? j[key].value(sub, Json()) : j[key];
  return v.is_number() ? v.get<double>() : std::nan("");
}

std::string point_label(const Json& r) {
  std::string rate = r.contains("request_rate") ? (r["request_rate"].is_string() ? r["request_rate"].get<std::string>()
                                                                                  : fmt::format("{:g}", r["request_rate"].get<double>()))
                                                : "?";
  return fmt::format("c={} r={}", r.value("concurrency", 0), rate);
}

// Each result's label: its concurrency and rate, with the file name when two share them.
std::vector<std::string> point_labels(const std::vector<Json>& results, const std::vector<std::string>& names) {
  std::vector<std::string> labels;
  std::map<std::string, int> seen;
  for (const Json& r : results) ++seen[point_label(r)];
  for (size_t i = 0; i < results.size(); ++i) {
    std::string l = point_label(results[i]);
    labels.push_back(seen[l] > 1 ? fmt::format("{} ({})", l, std::filesystem::path(names[i]).filename().string()) : l);
  }
  return labels;
}

// Tokens per expert relative to the layer's mean, on a diverging scale: blue below the mean,
// white at it (balanced), red above, saturated at twice the mean or the largest ratio seen.
void expert_heatmap(Svg& svg, double x, double y, double w, double h, const Json& load, const std::string& name) {
  const auto layers = load["layers"].get<std::vector<int>>();
  const auto tokens = load["tokens"].get<std::vector<std::vector<double>>>();
  const size_t n_experts = load["n_experts"].get<size_t>();
  Frame f{x + 70, y + 40, w - 170, h - 95, 0, double(n_experts), 0, double(layers.size())};
  svg.text(f.x + (w - 100) / 2, f.y - 14, "Expert load per layer (tokens / layer mean), " + name,
           {{"font-size", "15"}, {"font-weight", "bold"}}, "middle");
  double vmax = 2;
  std::vector<std::vector<double>> ratio(tokens.size());
  for (size_t l = 0; l < tokens.size(); ++l) {
    double sum = 0;
    for (double v : tokens[l]) sum += v;
    const double mean = sum / double(std::max<size_t>(1, n_experts));
    for (double v : tokens[l]) ratio[l].push_back(mean > 0 ? v / mean : 0);
    for (double r : ratio[l]) vmax = std::max(vmax, r);
  }
  auto color = [&](double r) {
    int red = 255, green = 255, blue = 255;
    if (r < 1) {  // towards #2166ac
      const double t = std::clamp(1 - r, 0.0, 1.0);
      red = int(255 - t * (255 - 0x21)), green = int(255 - t * (255 - 0x66)), blue = int(255 - t * (255 - 0xac));
    } else {  // towards #b2182b
      const double t = std::clamp((r - 1) / (vmax - 1), 0.0, 1.0);
      red = int(255 - t * (255 - 0xb2)), green = int(255 - t * (255 - 0x18)), blue = int(255 - t * (255 - 0x2b));
    }
    return fmt::format("#{:02x}{:02x}{:02x}", red, green, blue);
  };
  const double cw = f.w / double(n_experts), ch = f.h / double(std::max<size_t>(1, layers.size()));
  svg.open_group({{"class", "chart"}, {"data-chart", "expert_load"}});
  for (size_t l = 0; l < ratio.size(); ++l)
    for (size_t e = 0; e < ratio[l].size(); ++e)
      svg.rect(f.x + cw * double(e), f.y + ch * double(l), cw, ch,
               {{"class", "cell"}, {"data-layer", std::to_string(layers[l])}, {"data-expert", std::to_string(e)},
                {"fill", color(ratio[l][e])}, {"stroke", "white"}, {"stroke-width", n_experts > 64 ? "0" : "0.5"}});
  svg.close_group();
  svg.rect(f.x, f.y, f.w, f.h, {{"fill", "none"}, {"stroke", "#444"}});
  const size_t lstep = std::max<size_t>(1, layers.size() / 16), estep = std::max<size_t>(1, n_experts / 16);
  for (size_t l = 0; l < layers.size(); l += lstep)
    svg.text(f.x - 6, f.y + ch * (double(l) + 0.5) + 4, std::to_string(layers[l]), {}, "end");
  for (size_t e = 0; e < n_experts; e += estep) svg.text(f.x + cw * (double(e) + 0.5), f.y + f.h + 16, std::to_string(e), {}, "middle");
  svg.text(f.x + f.w / 2, f.y + f.h + 36, "expert", {}, "middle");
  svg.text(f.x - 48, f.y + f.h / 2, "layer", {}, "middle", -90);
  // Colour scale.
  const double sx = f.x + f.w + 20, steps = 20;
  for (int i = 0; i < int(steps); ++i)
    svg.rect(sx, f.y + f.h * (1 - (i + 1) / steps), 16, f.h / steps + 0.5, {{"fill", color(vmax * (i + 0.5) / steps)}});
  svg.rect(sx, f.y, 16, f.h, {{"fill", "none"}, {"stroke", "#444"}});
  for (double t : nice_ticks(0, vmax, 4)) svg.text(sx + 20, f.y + f.h * (1 - t / vmax) + 4, tick_label(t) + "x", {});
}

}  // namespace

std::string plot_results_svg(const std::vector<Json>& results, const std::vector<std::string>& names) {
  if (results.empty()) fail("bench plot: no result files");
  if (names.size() != results.size()) fail("bench plot: {} names for {} results", names.size(), results.size());
  for (size_t i = 0; i < results.size(); ++i)
    if (!results[i].is_object() || !results[i].contains("output_throughput") || !results[i].contains("ttft_ms"))
      fail("bench plot: {} is not a dsinfer bench result (no output_throughput / ttft_ms)", names[i]);

  // Latency percentiles against throughput, the results ordered by throughput (a sweep's curve).
  std::vector<size_t> order(results.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return results[a]["output_throughput"].get<double>() < results[b]["output_throughput"].get<double>();
  });
  std::vector<Series> latency;
  for (auto [key, pct] : {std::pair{"ttft_ms", "p50"}, {"ttft_ms", "p99"}, {"itl_ms", "p50"}, {"itl_ms", "p99"},
                          {"e2e_ms", "p50"}}) {
    Series s{fmt::format("{} {}", pct, key == std::string("ttft_ms") ? "TTFT" : key == std::string("itl_ms") ? "ITL" : "E2E"),
             {}, true};
    for (size_t i : order) {
      const double v = number_at(results[i], key, pct);
      if (!std::isnan(v)) s.points.emplace_back(results[i]["output_throughput"].get<double>(), v);
    }
    latency.push_back(std::move(s));
  }
  std::vector<Series> ttft, itl, imbalance;
  const Json* experts = nullptr;  // the heatmap's: the highest-throughput result with expert load
  std::string experts_name;
  const std::vector<std::string> labels = point_labels(results, names);
  for (size_t i : order) {
    const Json& r = results[i];
    const std::string& label = labels[i];
    std::vector<double> t, g;
    if (r.contains("ttfts"))
      for (const Json& v : r["ttfts"]) t.push_back(1e3 * v.get<double>());
    if (r.contains("itls"))
      for (const Json& per : r["itls"])
        for (const Json& v : per) g.push_back(1e3 * v.get<double>());
    ttft.push_back({label, cdf(std::move(t))});
    itl.push_back({label, cdf(std::move(g))});
    if (r.contains("expert_load") && r["expert_load"].is_object()) {
      experts = &r["expert_load"];
      experts_name = label;
      Series s{label, {}};
      for (const Json& sample : r["expert_load"]["samples"]) s.points.emplace_back(sample["t"].get<double>(), sample["overall"].get<double>());
      imbalance.push_back(std::move(s));
    }
  }

  const double W = 1200, H = 380;
  const int rows = experts ? 3 : 2;
  Svg svg(W, 50 + H * rows);
  svg.text(W / 2, 30, fmt::format("dsinfer bench: {} result{}", results.size(), results.size() == 1 ? "" : "s"),
           {{"font-size", "18"}, {"font-weight", "bold"}}, "middle");
  xy_chart(svg, 0, 50, W / 2, H, "Latency vs throughput (one point per result)", "output throughput (tokens/s)", "latency (ms)", latency,
           "latency_vs_throughput", true);
  xy_chart(svg, W / 2, 50, W / 2, H, "TTFT distribution", "time to first token (ms)", "fraction of requests", ttft,
           "ttft_cdf", false);
  xy_chart(svg, 0, 50 + H, W / 2, H, "Inter-token latency distribution", "inter-token latency (ms)",
           "fraction of gaps", itl, "itl_cdf", false);
  if (experts) {
    xy_chart(svg, W / 2, 50 + H, W / 2, H, "Expert imbalance over the run (max / mean, all layers)",
             "seconds into the run", "imbalance", imbalance, "imbalance_over_time", false);
    expert_heatmap(svg, 0, 50 + 2 * H, W, H, *experts, experts_name);
  } else {
    svg.text(W * 0.75, 50 + H * 1.5, "no expert load in these results (a dense model, or not a dsinfer server)",
             {{"fill", "#888"}}, "middle");
  }
  return svg.finish();
}

}  // namespace dsi::bench
