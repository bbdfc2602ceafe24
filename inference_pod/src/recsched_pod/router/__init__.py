"""The router (`--role router`): splits traffic between the CPU and GPU pools by the offload
threshold (`app`), tracks pool endpoints (`endpoints`), forwards OIP bodies (`infer`) over a pooled
HTTP client (`upstream_client`). Never imports torch's engine or the pod's server."""
