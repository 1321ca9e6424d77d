#include "bench/svg.h"

#include <fmt/format.h>

#include "core/error.h"

namespace dsi::bench {

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

std::string attr_text(const Svg::Attrs& attrs) {
  std::string out;
  for (const auto& [k, v] : attrs) out += fmt::format(" {}=\"{}\"", k, xml_escape(v));
  return out;
}

}  // namespace

Svg::Svg(double width, double height) {
  out_ = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      width, height);
}

void Svg::rect(double x, double y, double w, double h, const Attrs& attrs) {
  out_ += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"{}/>\n", x, y, w, h,
                      attr_text(attrs));
}

void Svg::line(double x1, double y1, double x2, double y2, const Attrs& attrs) {
  out_ += fmt::format("<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\"{}/>\n", x1, y1, x2, y2,
                      attr_text(attrs));
}

void Svg::polyline(const std::vector<std::pair<double, double>>& points, const Attrs& attrs) {
  std::string pts;
  for (const auto& [x, y] : points) pts += fmt::format("{}{:.2f},{:.2f}", pts.empty() ? "" : " ", x, y);
  out_ += fmt::format("<polyline points=\"{}\" fill=\"none\"{}/>\n", pts, attr_text(attrs));
}

void Svg::circle(double cx, double cy, double r, const Attrs& attrs) {
  out_ += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{:.2f}\"{}/>\n", cx, cy, r, attr_text(attrs));
}

void Svg::text(double x, double y, std::string_view content, const Attrs& attrs, const char* anchor, double rotate) {
  std::string transform = rotate != 0 ? fmt::format(" transform=\"rotate({} {:.2f} {:.2f})\"", rotate, x, y) : "";
  out_ += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"{}\"{}{}>{}</text>\n", x, y, anchor, transform,
                      attr_text(attrs), xml_escape(content));
}

void Svg::open_group(const Attrs& attrs) {
  out_ += fmt::format("<g{}>\n", attr_text(attrs));
  ++depth_;
}

void Svg::close_group() {
  if (depth_ == 0) fail("svg: close_group without open_group");
  out_ += "</g>\n";
  --depth_;
}

std::string Svg::finish() {
  while (depth_ > 0) close_group();
  return out_ + "</svg>\n";
}

}  // namespace dsi::bench
