# leash config for examples/kubernetes: leash is the ENTRYPOINT prefix of
# the app container (COPY'd to /etc/leash.hcl by examples/kubernetes/Dockerfile).
# One container, no sidecar, no shared volume: the credential reaches the
# app as an inherited memfd, /dev/fd/3.

# Log in with the pod's service-account token (jwt_file defaults to
# /var/run/secrets/kubernetes.io/serviceaccount/token, re-read at every
# login, so projected-token rotation is handled).
auth       = "kubernetes"
auth_mount = "kubernetes"
auth_role  = "app"

secret = ["db=database/creds/app-readonly"]

# The app reloads on SIGHUP. Use "restart" for apps that cannot: leash then
# restarts the app inside the same container, without Kubernetes noticing.
on_rotate     = "signal"
reload_signal = "HUP"

# leash is PID 1: SIGTERM from the kubelet is forwarded to the app; after
# kill_timeout the app's process group gets SIGKILL, then leash revokes the
# lease, for at most revoke_timeout. Keep terminationGracePeriodSeconds
# above stop_delay + kill_timeout + revoke_timeout.
stop_signal    = "TERM"
kill_timeout   = "20s"
revoke_timeout = "10s"
# Give the Service's endpoints time to drop the pod before the app stops.
stop_delay = "5s"

# /healthz, /v1/leases and /metrics on loopback: the Deployment's readiness
# probe runs `leash status --check` against it.
status_addr = "127.0.0.1:9102"

# One JSON object per line on stderr, for the cluster's log collector.
log_format = "json"
