{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "qt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, unless it does not already contain the chart name. */}}
{{- define "qt.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "qt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "qt.labels" -}}
helm.sh/chart: {{ include "qt.chart" .ctx }}
{{ include "qt.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: quantum-trader
{{- end }}

{{- define "qt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qt.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "qt.operator.fullname" -}}
{{- printf "%s-operator" (include "qt.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qt.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Redis objects are named <release>-redis: the URL is redis://:PASSWORD@<release>-redis:6379/0. */}}
{{- define "qt.redis.fullname" -}}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret that holds the Redis URL under the key `url` (what workers and the operator read). */}}
{{- define "qt.redis.urlSecret" -}}
{{- if .Values.redis.enabled }}
{{- default (include "qt.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- else }}
{{- required "redis.enabled=false needs redis.externalUrlSecret: a Secret with your Redis URL under the key `url`" .Values.redis.externalUrlSecret }}
{{- end }}
{{- end }}

{{/* image reference: repository@digest or repository:tag (tag defaults to appVersion). */}}
{{- define "qt.image" -}}
{{- $img := .image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .ctx.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* true when ServiceMonitor/PodMonitor objects are rendered. */}}
{{- define "qt.monitors" -}}
{{- if or .Values.metrics.serviceMonitor.enabled (and .Values.metrics.serviceMonitor.autoDetect (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{- end }}
{{- end }}

{{/* The operations API's Deployment/Service name. */}}
{{- define "qt.api.fullname" -}}
{{- printf "%s-api" (include "qt.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The admission webhook's Service name (its DNS name is in the serving certificate). */}}
{{- define "qt.webhook.fullname" -}}
{{- printf "%s-webhook" (include "qt.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret with the webhook's serving certificate (tls.crt, tls.key). */}}
{{- define "qt.webhook.tlsSecret" -}}
{{- if .Values.webhook.certManager.enabled }}
{{- printf "%s-tls" (include "qt.webhook.fullname" .) }}
{{- else }}
{{- required "webhook.enabled needs webhook.certManager.enabled=true, or webhook.tls.secretName (a kubernetes.io/tls Secret for the webhook Service's DNS name) and webhook.tls.caBundle" .Values.webhook.tls.secretName }}
{{- end }}
{{- end }}
