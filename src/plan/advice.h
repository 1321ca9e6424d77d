#pragma once
// The judgement part of a plan: which layout to recommend and why, and the warnings for the
// sizing and layout mistakes users make (docs/plan.md "Recommendation", "Warnings").
#include "plan/planner.h"

namespace dsi::plan {

// Sets p.recommended and p.reason from p.layouts.
void recommend(Plan& p);
// Appends to p.warnings; call after recommend.
void add_warnings(Plan& p);

std::string format_gib(double bytes);  // "78.4 GiB"

}  // namespace dsi::plan
