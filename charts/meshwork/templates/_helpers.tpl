{{/* Names and labels shared by every template. */}}
{{- define "meshwork.name" -}}meshwork{{- end -}}

{{- define "meshwork.fullname" -}}
{{- if contains "meshwork" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-meshwork" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meshwork.controlPlane" -}}{{ include "meshwork.fullname" . }}-control-plane{{- end -}}

{{- define "meshwork.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "meshwork.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshwork
{{- end -}}

{{- define "meshwork.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshwork.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "meshwork.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
