/work/main/target/release/heapscope diff /work/main/bench/data/diff-200m-1.dump /work/main/bench/data/diff-200m-2.dump /work/main/bench/data/diff-200m-3.dump
