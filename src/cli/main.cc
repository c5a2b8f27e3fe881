// The aec command. Everything lives in aec_cli so tests can link it.
#include "cli/verbs.h"

int main(int argc, char** argv) {
  return aec::cli::run_main(argc, argv);
}
