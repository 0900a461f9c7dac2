/work/main/target/release/heapscope summary /work/main/bench/data/bench-1g.dump
