/* hashflop_coord_cmd: the hashflop-coord commands that need no coord.json, each in its own file
 * (hashflop-coord-*.c). Each takes the words after the command's name (argv[0] is the command)
 * and returns the exit status: 0 success, 1 a runtime failure, 2 a usage or input error.
 * Threading: main's thread.
 */
#ifndef HASHFLOP_COORD_CMD_H
#define HASHFLOP_COORD_CMD_H

/* hashflop-coord backtest --series FILE.csv --fleet FLEET.json [--json] (hashflop-coord-backtest.c) */
int hf_coord_cmd_backtest(int argc, char **argv);
/* hashflop-coord series-gen [--days N --seed N ...] --out FILE.csv (hashflop-coord-series.c) */
int hf_coord_cmd_series_gen(int argc, char **argv);
/* hashflop-coord feed-server --series FILE.csv --speed X --listen ADDR (hashflop-coord-feedsrv.c) */
int hf_coord_cmd_feed_server(int argc, char **argv);

#endif
