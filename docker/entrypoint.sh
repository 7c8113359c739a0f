#!/usr/bin/env bash
# Entry point of the gradsight container (docker/Dockerfile). Runs as the unprivileged user.
#   (no arguments) or "lab [ARGS...]"  JupyterLab on 0.0.0.0:8888, root /workspace; refuses
#                                      to start without a JUPYTER_TOKEN
#   any other command                  runs it (e.g. `gradsight doctor`)
# With ENABLE_SSH=1, sshd (key-only, docker/sshd_config) starts first, on SSH_PORT (2222);
# its keys come from the file mounted at GRADSIGHT_AUTHORIZED_KEYS.
set -euo pipefail

SSHD_CONFIG=${GRADSIGHT_SSHD_CONFIG:-/etc/gradsight/sshd_config}
AUTHORIZED_KEYS=${GRADSIGHT_AUTHORIZED_KEYS:-/etc/gradsight/authorized_keys}
WORKSPACE=${GRADSIGHT_WORKSPACE:-/workspace}
SSH_PORT=${SSH_PORT:-2222}
MIN_TOKEN_LENGTH=16

die() {
    echo "gradsight-entrypoint: $*" >&2
    exit 2
}

check_token() {
    # Jupyter reads JUPYTER_TOKEN itself. An empty one would switch authentication off, so
    # refuse it (and a short one) here, before anything starts.
    local token=${JUPYTER_TOKEN:-}
    if [[ -z ${token//[[:space:]]/} ]]; then
        die "JUPYTER_TOKEN is empty or unset; Jupyter does not start without one (e.g. JUPYTER_TOKEN=\$(openssl rand -hex 24))"
    fi
    if ((${#token} < MIN_TOKEN_LENGTH)); then
        die "JUPYTER_TOKEN has ${#token} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. JUPYTER_TOKEN=\$(openssl rand -hex 24))"
    fi
}

start_sshd() {
    local sshd keydir=$HOME/.sshd
    # ssh-keygen -l lists the keys of an authorized_keys file, and fails when it holds none.
    if ! ssh-keygen -l -f "$AUTHORIZED_KEYS" >/dev/null 2>&1; then
        die "ENABLE_SSH=1 but $AUTHORIZED_KEYS holds no public key; mount one read-only (SSH_AUTHORIZED_KEYS=~/.ssh/id_ed25519.pub with docker/compose.yaml)"
    fi
    # A copy owned by this user with mode 600: sshd's StrictModes refuses a mounted file
    # that another uid owns or that others can write.
    install -d -m 700 "$HOME/.ssh"
    install -m 600 "$AUTHORIZED_KEYS" "$HOME/.ssh/authorized_keys"
    install -d -m 700 "$keydir"
    if [[ ! -s $keydir/ssh_host_ed25519_key ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "gradsight-container" -f "$keydir/ssh_host_ed25519_key"
    fi
    # sshd re-executes itself, so it needs its absolute path.
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    local args=(-f "$SSHD_CONFIG" -h "$keydir/ssh_host_ed25519_key" -p "$SSH_PORT"
        -o "PidFile=$keydir/sshd.pid")
    "$sshd" -t "${args[@]}" || die "sshd refused its configuration $SSHD_CONFIG (see above)"
    echo "gradsight-entrypoint: sshd on port $SSH_PORT for user $(id -un), keys:" >&2
    ssh-keygen -l -f "$HOME/.ssh/authorized_keys" >&2
    # -D -e: stay in the foreground and log to stderr, i.e. to `docker logs`.
    "$sshd" -D -e "${args[@]}" &
}

warn_unwritable() {
    local dir
    for dir in "$WORKSPACE"/data "$WORKSPACE"/runs "$WORKSPACE"/checkpoints "$WORKSPACE"/notebooks; do
        if [[ -d $dir && ! -w $dir ]]; then
            echo "gradsight-entrypoint: warning: $dir is not writable by uid $(id -u); on the host, chown the folder mounted there to $(id -u):$(id -g), or build with GRADSIGHT_UID=\$(id -u) GRADSIGHT_GID=\$(id -g)" >&2
        fi
    done
}

mode=${1:-lab}
if [[ $mode == lab ]]; then
    check_token
fi
case ${ENABLE_SSH:-0} in
    1 | true | yes) start_sshd ;;
    0 | false | no | "") ;;
    *) die "ENABLE_SSH=$ENABLE_SSH: use 1 to start sshd, 0 (the default) not to" ;;
esac
warn_unwritable

if [[ $mode == lab ]]; then
    shift || true
    # The token stays in the environment, never on the command line, which `ps` shows to
    # everyone on the host.
    exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser \
        --ServerApp.root_dir="$WORKSPACE" "$@"
fi
exec "$@"
