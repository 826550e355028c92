{{/* The chart's name (nameOverride) and the prefix of every object it names (fullnameOverride). */}}
{{- define "nodepatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nodepatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Common labels. */}}
{{- define "nodepatch.labels" -}}
app.kubernetes.io/name: {{ include "nodepatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "nodepatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodepatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "nodepatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "nodepatch.agentNamespace" -}}
{{ .Values.agent.namespace.name }}
{{- end }}

{{/* Whether the agent priority class needs a ResourceQuota (GKE and clusters configured like it
admit the system-* critical classes outside kube-system only with one). */}}
{{- define "nodepatch.agentQuota" -}}
{{- $create := .Values.agent.priorityClassQuota.create }}
{{- if eq (toString $create) "auto" }}
{{- if has .Values.agent.priorityClassName (list "system-node-critical" "system-cluster-critical") }}true{{ end }}
{{- else if $create }}true{{ end }}
{{- end }}
