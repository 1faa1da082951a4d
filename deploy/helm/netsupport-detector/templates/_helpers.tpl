{{/* Names and labels. */}}
{{- define "nsd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nsd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nsd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nsd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nsd.labels" -}}
{{ include "nsd.selectorLabels" . }}
app.kubernetes.io/component: worker
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "nsd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nsd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nsd.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* DETECTOR_RULES: the built-in rule's path in the image, then the chart's rule files. */}}
{{- define "nsd.rules" -}}
{{- $paths := list -}}
{{- if .Values.rules.builtin -}}{{- $paths = append $paths .Values.rules.builtinPath -}}{{- end -}}
{{- range $name, $_ := .Values.rules.files -}}{{- $paths = append $paths (printf "/etc/detector/rules/%s" $name) -}}{{- end -}}
{{- join "," $paths -}}
{{- end -}}

{{/* Refuse values that cannot work, before anything is applied. */}}
{{- define "nsd.validate" -}}
{{- $v := .Values -}}
{{- if and (not $v.rules.builtin) (empty $v.rules.files) -}}
{{- fail "rules: set rules.builtin or give rules.files (no rule to run)" -}}
{{- end -}}
{{- range $key, $_ := $v.config -}}
{{- if not (hasPrefix "DETECTOR_" $key) -}}{{- fail (printf "config.%s: settings are DETECTOR_* variables" $key) -}}{{- end -}}
{{- if or (hasSuffix "PASSWORD" $key) (hasSuffix "PASSWORD_FILE" $key) -}}
{{- fail (printf "config.%s: secrets go in kafka.sasl.existingSecret / kafka.tls.existingSecret, mounted as files" $key) -}}
{{- end -}}
{{- end -}}
{{- if lt (int $v.terminationGracePeriodSeconds) 75 -}}
{{- fail "terminationGracePeriodSeconds: at least 75 (the worker waits up to 60 s for its ingest thread on SIGTERM)" -}}
{{- end -}}
{{- if and $v.autoscaling.hpa.enabled $v.autoscaling.keda.enabled -}}
{{- fail "autoscaling: enable hpa or keda, not both (both would scale the Deployment)" -}}
{{- end -}}
{{- $parts := int $v.kafka.inputPartitions -}}
{{- if gt $parts 0 -}}
{{- $surge := 0 -}}{{- if kindIs "string" $v.updateStrategy.rollingUpdate.maxSurge -}}{{- $surge = 1 -}}{{- else -}}{{- $surge = int $v.updateStrategy.rollingUpdate.maxSurge -}}{{- end -}}
{{- $most := int $v.replicaCount -}}
{{- if $v.autoscaling.hpa.enabled -}}{{- $most = int $v.autoscaling.hpa.maxReplicas -}}{{- end -}}
{{- if $v.autoscaling.keda.enabled -}}{{- $most = int $v.autoscaling.keda.maxReplicaCount -}}{{- end -}}
{{- if gt (add $most $surge) $parts -}}
{{- fail (printf "replicas (most %d) + maxSurge (%d) > kafka.inputPartitions (%d): a worker without partitions never becomes ready" $most $surge $parts) -}}
{{- end -}}
{{- end -}}
{{- if and $v.metrics.monitor.enabled (not (has $v.metrics.monitor.kind (list "PodMonitor" "ServiceMonitor"))) -}}
{{- fail "metrics.monitor.kind: PodMonitor or ServiceMonitor" -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's settings (also hashed into the pods' checksum annotation). */}}
{{- define "nsd.settings" -}}
{{- $v := .Values -}}
{{- $s := dict -}}
{{- range $key, $value := $v.config -}}{{- $_ := set $s $key (toString $value) -}}{{- end -}}
{{- $_ := set $s "DETECTOR_BOOTSTRAP_SERVERS" $v.kafka.bootstrapServers -}}
{{- $_ := set $s "DETECTOR_CONSUMER_GROUP" $v.kafka.consumerGroup -}}
{{- $_ := set $s "DETECTOR_SECURITY_PROTOCOL" $v.kafka.securityProtocol -}}
{{- if hasPrefix "SASL" $v.kafka.securityProtocol -}}
{{- $_ := set $s "DETECTOR_SASL_MECHANISM" $v.kafka.sasl.mechanism -}}
{{- $_ := set $s "DETECTOR_SASL_USERNAME" $v.kafka.sasl.username -}}
{{- if $v.kafka.sasl.existingSecret -}}{{- $_ := set $s "DETECTOR_SASL_PASSWORD_FILE" (printf "/etc/detector/sasl/%s" $v.kafka.sasl.passwordKey) -}}{{- end -}}
{{- end -}}
{{- if $v.kafka.tls.existingSecret -}}
{{- if $v.kafka.tls.caKey -}}{{- $_ := set $s "DETECTOR_SSL_CAFILE" (printf "/etc/detector/tls/%s" $v.kafka.tls.caKey) -}}{{- end -}}
{{- if $v.kafka.tls.certKey -}}{{- $_ := set $s "DETECTOR_SSL_CERTFILE" (printf "/etc/detector/tls/%s" $v.kafka.tls.certKey) -}}{{- end -}}
{{- if $v.kafka.tls.keyKey -}}{{- $_ := set $s "DETECTOR_SSL_KEYFILE" (printf "/etc/detector/tls/%s" $v.kafka.tls.keyKey) -}}{{- end -}}
{{- if $v.kafka.tls.keyPasswordKey -}}{{- $_ := set $s "DETECTOR_SSL_KEY_PASSWORD_FILE" (printf "/etc/detector/tls/%s" $v.kafka.tls.keyPasswordKey) -}}{{- end -}}
{{- end -}}
{{- $_ := set $s "DETECTOR_HTTP_HOST" "0.0.0.0" -}}
{{- $_ := set $s "DETECTOR_HTTP_PORT" (toString $v.http.port) -}}
{{- $_ := set $s "DETECTOR_RULES" (include "nsd.rules" .) -}}
{{- if $v.exceptions.files -}}
{{- $paths := list -}}
{{- range $name, $_ := $v.exceptions.files -}}{{- $paths = append $paths (printf "/etc/detector/exceptions/%s" $name) -}}{{- end -}}
{{- $_ := set $s "DETECTOR_EXCEPTIONS" (join "," $paths) -}}
{{- end -}}
{{- range $key := keys $s | sortAlpha }}
{{ $key }}: {{ get $s $key | quote }}
{{- end -}}
{{- end -}}
