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

// One row per run with preloaded leases: how many, how long the preload took, the server's
// memory before and after it and per lease, and the run's pairs/s.
void print_preload(std::FILE* out, const std::vector<RunStats>& runs);

// One row per contender that ran: what it guarantees (Contender::guarantees).
void print_guarantees(std::FILE* out, const std::vector<RunStats>& runs);

// The performance targets of aec's issue 7 that `runs` measured (aecd durable against Redis,
// PostgreSQL, etcd and the loopback floor on distinct keys at C = 64; the hot key at C = 64):
// the figure, the target, met or missed. Nothing for a target whose runs are missing.
void print_targets(std::FILE* out, const std::vector<RunStats>& runs);

// Data files for gnuplot in `dir`: throughput-WORKLOAD.dat (median pairs/s per contender, a
// column per C) and latency-WORKLOAD.dat (median acquire p50/p99/p99.9 in µs per contender at
// the largest C).
Status write_plot_data(const std::string& dir, const std::vector<RunStats>& runs);

// `runs` as a JSON array of objects, one per run, to `path` ("-" for stdout).
Status write_json(const std::string& path, const std::vector<RunStats>& runs);

}  // namespace aec::bench
