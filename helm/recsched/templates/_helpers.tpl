{{/* Names and labels. Selectors use only name + instance, never the chart version. */}}
{{- define "recsched.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "recsched.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "recsched.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recsched.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "recsched.labels" -}}
{{ include "recsched.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "recsched.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "recsched.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches in namespace scope. */}}
{{- define "recsched.watchNamespaces" -}}
{{- if .Values.rbac.watchNamespaces -}}
{{- join "," .Values.rbac.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs, exactly what it calls (tests/helm checks them both ways). */}}
{{- define "recsched.rules" -}}
- apiGroups: [recsched.io]
  resources: [recmodels]
  verbs: [get, list, watch, patch]
- apiGroups: [recsched.io]
  resources: [recmodels/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch, delete]
{{- end -}}
