#!/usr/bin/env bash
# The cost of the compliance rules in the pipeline: `wecom-archive bench` without rules and with
# rule sets of 100 and 1,000 keywords (10 rules of 10 or 100 keywords each, plus 3 regexes, a few
# keywords that the simulator's texts hit and many that they do not), one after the other on the
# same machine. Prints the per-core ratio (pipeline msgs/s on one core / raw RSA unwraps/s on one
# core) and the all-core ratio of each.
#   bash scripts/bench-rules.sh [--messages N] [--rounds N]   (extra args go to every bench)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin wecom-archive
bin="${CARGO_TARGET_DIR:-target}/release/wecom-archive"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# rules FILE KEYWORDS_PER_RULE: 10 rules; each has the given number of keywords.
rules() {
    python3 - "$1" "$2" <<'PY'
import sys
path, per_rule = sys.argv[1], int(sys.argv[2])
hits = ["发票", "加急", "优惠", "please check", "库存"]          # the simulator's texts have these
syllables = "安 百 财 单 订 费 付 港 购 货 价 结 借 款 利 账 贷 税 退 息 现 约 债 折 资".split()
with open(path, "w") as f:
    for r in range(10):
        words = [hits[r % len(hits)]] if r < 5 else []
        i = 0
        while len(words) < per_rule:
            a, b, c = syllables[i % 25], syllables[(i // 25) % 25], syllables[(i * 7 + r) % 25]
            words.append(f"{a}{b}{c}{r}" if i % 2 else f"kw{r}x{i}")
            i += 1
        f.write(f'[[rule]]\nid = "r{r}"\nseverity = "{["info", "warn", "critical"][r % 3]}"\n')
        f.write("keywords = [" + ", ".join(f'"{w}"' for w in words) + "]\n")
        if r < 3:
            f.write(["regex = ['\\\\d{6}(19|20)\\\\d{2}']\n", "regex = ['(?i)wx[a-z0-9]{10}']\n",
                     "regex = ['1[3-9]\\\\d{9}']\n"][r])
        f.write("\n")
PY
}
rules "$tmp/r100.toml" 10
rules "$tmp/r1000.toml" 100

printf '%-16s %10s %10s %12s %12s %10s %10s\n' rules keywords findings "unwrap/s" "1-core msg/s" "per-core" "all-core"
for set in none r100 r1000; do
    args=()
    [ "$set" = none ] || args=(--rules "$tmp/$set.toml")
    "$bin" --quiet bench --json "${args[@]}" "$@" >"$tmp/$set.json"
    python3 - "$tmp/$set.json" "$set" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
r = s.get("rules") or {"keywords": 0}
one = s["pipeline_one_core"]["msgs_per_sec"] if s.get("pipeline_one_core") else float("nan")
print(f'{sys.argv[2]:<16} {r["keywords"]:>10} {s["findings"]:>10} {s["raw_unwrap_ops_per_sec"]:>12.0f} '
      f'{one:>12.0f} {s["ratio_one_core_to_unwrap"] or float("nan"):>10.3f} '
      f'{s["ratio_all_cores_to_unwrap_per_core"]:>10.3f}')
PY
done
