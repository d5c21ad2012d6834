/* hf_bench: the subcommands of hashflop-bench (argv[0] is the subcommand name). */
#ifndef HF_BENCH_H
#define HF_BENCH_H

int hf_bench_hash_main(int argc, char **argv);
int hf_bench_gemm_main(int argc, char **argv);

#endif
