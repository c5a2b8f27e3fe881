// Printing runs: a markdown table for people, JSON for scripts.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <aec/status.h>

#include "stats.h"

namespace aec::bench {

// One line per run for progress on stderr.
std::string progress_line(const RunStats& run);

// The markdown table of `runs`, with each run's ops/s relative to raw-sqlite and flock measured
// in the same repetition, workload and client count.
void print_markdown(std::FILE* out, const std::vector<RunStats>& runs);

// One row per (contender, workload, C): the median of each figure over its repetitions, ratios
// being medians of the per-repetition ratios.
void print_summary(std::FILE* out, const std::vector<RunStats>& runs);

// `runs` as a JSON array of objects, one per run, to `path` ("-" for stdout).
Status write_json(const std::string& path, const std::vector<RunStats>& runs);

}  // namespace aec::bench
