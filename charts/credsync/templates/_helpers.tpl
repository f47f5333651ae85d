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
{{/* Rules on credsync's own kinds: the controllers list and watch them, patch finalizers on the
kinds that can delete in a vendor (deletionPolicy Delete), and write status. Nothing is read by GET:
the reflector caches serve every lookup. */}}
{{- define "credsync.crdRules" -}}
- apiGroups: ["credsync.io"]
  resources: [vendorconnections, crmusercredentials, erpidentities, ssoappcredentials]
  verbs: [list, watch]
- apiGroups: ["credsync.io"]
  resources: [crmusercredentials, ssoappcredentials]
  verbs: [patch]
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
