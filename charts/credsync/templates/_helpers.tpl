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
kinds that can delete in a vendor (deletionPolicy Delete), and write status. Nothing is read by GET
(the reflector caches serve every lookup) but a connection's metadata right before its in-use
finalizer changes. */}}
{{- define "credsync.crdRules" -}}
- apiGroups: ["credsync.io"]
  resources: [vendorconnections, crmusercredentials, erpidentities, ssoappcredentials]
  verbs: [list, watch]
- apiGroups: ["credsync.io"]
  resources: [crmusercredentials, ssoappcredentials]
  verbs: [patch]
# The credsync.io/in-use finalizer: a VendorConnection stays while a resource must still delete
# its vendor record through it (namespace deletion, see docs/troubleshooting.md).
- apiGroups: ["credsync.io"]
  resources: [vendorconnections]
  verbs: [get, patch]
- apiGroups: ["credsync.io"]
  resources: [vendorconnections/status]
  verbs: [patch]
# A resource's status is replaced whole, at the resourceVersion read (src/reconcile/status_write.rs).
- apiGroups: ["credsync.io"]
  resources: [crmusercredentials/status, erpidentities/status, ssoappcredentials/status]
  verbs: [update]
{{- end -}}
{{/* Secrets: read the referenced ones; the watch is metadata-only. */}}
{{- define "credsync.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
# patch: only to put the credsync.io/in-use finalizer on a connection's credential Secrets, and
# take it off, so that a namespace deletion cannot take them before the vendor records are
# deleted. RBAC cannot narrow patch to metadata or to names chosen by tenants; the operator
# sends only metadata patches of its own finalizer (src/reconcile/in_use.rs).
- apiGroups: [""]
  resources: [secrets]
  verbs: [patch]
- apiGroups: ["events.k8s.io"]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
