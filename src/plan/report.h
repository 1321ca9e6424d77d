#pragma once
// Presenting a Plan: an aligned text report for people, JSON for scripts (docs/plan.md lists
// the JSON fields).
#include <string>

#include "core/json.h"
#include "plan/planner.h"

namespace dsi::plan {

std::string plan_text(const Plan& p);
Json plan_json(const Plan& p);

}  // namespace dsi::plan
