{{- define "credsync.name" -}}credsync{{- end -}}
{{- define "credsync.fullname" -}}
{{- if contains "credsync" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-credsync" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "credsync.labels" -}}
app.kubernetes.io/name: credsync
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "credsync.selectorLabels" -}}
app.kubernetes.io/name: credsync
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "credsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "credsync.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
{{/* Rules on credsync's own kinds: what the controllers read, patch (finalizers) and report status on. */}}
{{- define "credsync.crdRules" -}}
- apiGroups: ["credsync.io"]
  resources: [vendorconnections, crmusercredentials, erpidentities, ssoappcredentials]
  verbs: [get, list, watch, patch]
- apiGroups: ["credsync.io"]
  resources: [vendorconnections/status, crmusercredentials/status, erpidentities/status, ssoappcredentials/status]
  verbs: [patch]
{{- end -}}
{{/* Secrets: read the referenced ones; the watch is metadata-only. */}}
{{- define "credsync.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: ["events.k8s.io"]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
