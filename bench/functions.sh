# Shell helpers shared by the bench/ scripts (sourced).

# wait_for SECONDS CMD...: poll CMD every 0.1 s; fail after SECONDS.
# (Timings never come from this polling, which only has to be cheap.)
wait_for () {
    local limit=$(( $1 * 10 )) i=0; shift
    until "$@" >/dev/null 2>&1; do
        i=$((i+1)); [ $i -ge $limit ] && return 1
        sleep 0.1
    done
}
