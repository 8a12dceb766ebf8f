{{/* Common names and labels. */}}
{{- define "fraudstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fraudstream.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fraudstream.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "fraudstream.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "fraudstream.fullname" .)) -}}
{{- end -}}

{{- define "fraudstream.replicas" -}}
{{- $r := .spec -}}
{{- if $r.singleton -}}1
{{- else if $r.partitioned -}}{{ min ($r.replicas | int) (.root.Values.kafka.partitions | int) }}
{{- else -}}{{ $r.replicas | default 1 }}
{{- end -}}
{{- end -}}

{{- define "fraudstream.kind" -}}
{{- if .partitioned -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}
