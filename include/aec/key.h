// Keys: what a lease protects.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec {

// The longest key, in bytes.
inline constexpr std::size_t kMaxKeyBytes = 512;

// Ok when `key` is a non-empty, valid UTF-8 string of at most kMaxKeyBytes bytes with no control
// characters (U+0000–U+001F, U+007F–U+009F). Otherwise InvalidArgument naming the problem.
Status validate_key(std::string_view key);

// The key of a data job owned by a team, as the Versatile Data Kit names jobs: "TEAM/JOB"
// (`aec run --team TEAM --job JOB`, aecd's /data-jobs/for-team/TEAM/jobs/JOB routes).
// InvalidArgument when `team` or `job` is empty or contains '/', or the key fails validate_key().
Result<std::string> team_job_key(std::string_view team, std::string_view job);

}  // namespace aec
