#pragma once
// A minimal SVG writer for the bench plots: elements appended as text, attribute values
// escaped. Coordinates in user units (pixels at 100%). Not thread-safe.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsi::bench {

std::string xml_escape(std::string_view text);

class Svg {
 public:
  Svg(double width, double height);
  // `attrs` are extra name="value" pairs (class, data-*, fill, ...), escaped here.
  using Attrs = std::vector<std::pair<std::string, std::string>>;
  void rect(double x, double y, double w, double h, const Attrs& attrs);
  void line(double x1, double y1, double x2, double y2, const Attrs& attrs);
  void polyline(const std::vector<std::pair<double, double>>& points, const Attrs& attrs);
  void circle(double cx, double cy, double r, const Attrs& attrs);
  // anchor: start, middle, end; rotate: degrees about (x, y).
  void text(double x, double y, std::string_view content, const Attrs& attrs, const char* anchor = "start",
            double rotate = 0);
  void open_group(const Attrs& attrs);
  void close_group();
  std::string finish();  // the document

 private:
  std::string out_;
  int depth_ = 0;
};

}  // namespace dsi::bench
