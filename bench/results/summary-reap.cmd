reap /work/main/bench/data/bench-1g.dump
