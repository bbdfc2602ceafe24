"""The HTTP layer shared by the pod and the router: the common routes, errors and admin endpoint
(`shell`),
the OIP v2 codec (`protocol`, `json_tensors`) and the connection protocol (`lean_http`)."""
