{{/* Common labels. */}}
{{- define "nodepatch.labels" -}}
app.kubernetes.io/name: nodepatch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "nodepatch.selectorLabels" -}}
app.kubernetes.io/name: nodepatch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "nodepatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "nodepatch.agentNamespace" -}}
{{ .Values.agent.namespace.name }}
{{- end }}
