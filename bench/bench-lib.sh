# bench/bench-lib.sh: what the benchmark scripts share (sourced, never
# run).  Plain helpers with no state of their own: polling, arithmetic
# for the summaries, CPU time of a process, a free TCP port.
# SPDX-License-Identifier: BSD-3-Clause

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds; 1 if
# it never did.  (Timings come from logs or clocks, not from this
# polling, which only has to be cheap.)
wait_for () {
    local limit=$(( $1 * 10 )) i=0; shift
    until "$@" >/dev/null 2>&1; do
        i=$((i+1)); [ $i -ge $limit ] && return 1
        sleep 0.1
    done
}

now () { date +%s.%N; }
sub () { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
div () { awk -v x="$1" -v y="$2" 'BEGIN {if (y > 0) printf "%.3f", x / y; else print "-"}'; }
mbps () { awk -v b="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.0f", b / s / 1e6; else print "-"}'; }
load1 () { cut -d' ' -f1 /proc/loadavg; }
# cpu_busy: "BUSY TOTAL" clock ticks of the whole machine so far.
cpu_busy () { awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: user + system clock ticks of a process (all its
# threads, also those that have exited); 0 once it is gone.
cpu_ticks () {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }                       # after "(comm) "
    set -- $s                         # $1 is field 3 (state)
    echo $(( ${12} + ${13} ))
}
# cpu_s PID: the same in seconds.
cpu_s () { awk -v t="$(cpu_ticks "$1")" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}'; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port () {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# median: of the numbers on stdin, one a line ("-" lines ignored).
median () {
    grep -v '^-$' | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) {print "-"; exit}
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# log_t FILE REGEX: seconds since midnight of the first line matching.
log_t () {
    awk -v re="$2" '$0 ~ re { split($1, a, /[:.]/)
        printf "%.3f\n", a[1] * 3600 + a[2] * 60 + a[3] + a[4] / 1000; exit }' "$1"
}
# log_span FILE FROM TO: seconds between the first FROM and TO lines.
log_span () {
    local a b
    a=$(log_t "$1" "$2") b=$(log_t "$1" "$3")
    [ -n "$a" ] && [ -n "$b" ] || { echo -; return; }
    awk -v a="$a" -v b="$b" 'BEGIN {d = b - a; if (d < 0) d += 86400; printf "%.3f", d}'
}

# time_cmd CMD...: "WALL CPU" seconds of CMD (stdout discarded).
time_cmd () {
    local TIMEFORMAT='%R %U %S' t
    t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
    set -- $t
    awk -v r="$1" -v u="$2" -v s="$3" 'BEGIN {printf "%.3f %.2f\n", r, u + s}'
}

# ss_bytes PORT: "ACKED RECEIVED" of lb's connection to PORT (payload
# bytes that TCP carried each way, TLS records and all).
ss_bytes () {
    ss -tinH state established "( dport = :$1 )" | tr ' ' '\n' | awk -F: '
        $1 == "bytes_acked" {a = $2} $1 == "bytes_received" {r = $2}
        END {printf "%d %d\n", a, r}'
}
