for f in .debs/*.deb; do dpkg -x $f /; done; ldconfig
./scripts/build.sh > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
mkdir -p /tmp/g
for s in 0 1 2 3; do (OMP_WAIT_POLICY=PASSIVE timeout 420 ./build/hydra claims --all --budget ci --seed $s --threads 2 --json /tmp/g/ci_seed$s.json > /tmp/g/ci_seed$s.log 2>&1 &) ; done
for lr in 3e-3 1e-2 3e-2; do for s in 0 1; do (OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE timeout 420 ./build/hydra mqar --pattern DS --init-std 0.05 --lr $lr --steps 400 --eval-every 50 --seed $s --threads 1 > /tmp/g/adamw_lr${lr}_s$s.log 2>&1 &); done; done
sleep 5; while pgrep -x hydra > /dev/null; do sleep 5; done
tar czf $OUT/g.tgz -C /tmp g; tail -n 12 /tmp/g/ci_seed*.log; grep -h "^mqar" /tmp/g/adamw*.log
