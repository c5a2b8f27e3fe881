// aecd: aec's control service. Everything is in aec::cli::serve_main (shared with `aec serve`).
#include "cli/verbs.h"

int main(int argc, char** argv) {
  return aec::cli::serve_main("aecd", argc, argv);
}
