{{/*
Helper templates of the Flowlet chart. Other templates (and the monitoring templates) reuse them:

  flowlet.name                     "flowlet" (the app.kubernetes.io/name of every object)
  flowlet.fullname                 object name prefix: fullnameOverride, else the release name
  flowlet.chart                    "<chart>-<version>" (the helm.sh/chart label)
  flowlet.labels                   recommended labels of every object          (arg: root context .)
  flowlet.selectorLabels           app.kubernetes.io/name + instance           (arg: root context .)
  flowlet.componentName            "<fullname>-<component>"                    (arg: dict "ctx" . "component" "backend")
  flowlet.componentLabels          flowlet.labels + app.kubernetes.io/component (arg: dict "ctx" . "component" "backend")
  flowlet.componentSelectorLabels  name + instance + component                 (arg: dict "ctx" . "component" "backend")
  flowlet.serviceAccountName       the ServiceAccount the pods run as          (arg: root context .)
  flowlet.image                    "<repository>@<digest>" or "<repository>:<tag>" (arg: dict "ctx" . "component" "backend")
  flowlet.imagePullPolicy          image.pullPolicy, else IfNotPresent for a digest, Always for a tag (arg: as flowlet.image)

Components are "backend" (port 8000, named "http": /healthz, /metrics, /api) and "frontend"
(port 3000, named "http": /healthz). Selectors use only name, instance and component labels.
*/}}

{{- define "flowlet.name" -}}
flowlet
{{- end }}

{{- define "flowlet.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "flowlet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flowlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flowlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "flowlet.labels" -}}
helm.sh/chart: {{ include "flowlet.chart" . }}
{{ include "flowlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: flowlet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flowlet.componentName" -}}
{{- printf "%s-%s" (include "flowlet.fullname" .ctx) .component }}
{{- end }}

{{- define "flowlet.componentLabels" -}}
{{ include "flowlet.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "flowlet.componentSelectorLabels" -}}
{{ include "flowlet.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "flowlet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flowlet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "flowlet.image" -}}
{{- $image := (index .ctx.Values .component).image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- $tag := $image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{- define "flowlet.imagePullPolicy" -}}
{{- if .ctx.Values.image.pullPolicy }}
{{- .ctx.Values.image.pullPolicy }}
{{- else if (index .ctx.Values .component).image.digest }}
{{- /* A digest names one immutable image: pulling it again gains nothing. */}}
{{- "IfNotPresent" }}
{{- else }}
{{- /* A tag can move: resolve it on every pod start. */}}
{{- "Always" }}
{{- end }}
{{- end }}
