{{/* The chart's name, or nameOverride. */}}
{{- define "tributary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: <release>-<chart>, or the release alone when it already is the chart's name. */}}
{{- define "tributary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if eq .Release.Name (include "tributary.name" .) }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "tributary.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The labels that select the pods (Deployment, Service, PodDisruptionBudget). */}}
{{- define "tributary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tributary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object. */}}
{{- define "tributary.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "tributary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tributary.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Refuses values that cannot work, before anything is rendered. */}}
{{- define "tributary.validate" -}}
{{- if not (or (eq .Values.backend "embedded") (eq .Values.backend "nats") (eq .Values.backend "kafka")) }}
{{- fail (printf "backend must be embedded, nats or kafka, not %s" .Values.backend) }}
{{- end }}
{{- if lt (int .Values.replicas) 1 }}
{{- fail "replicas must be at least 1" }}
{{- end }}
{{- if and (eq .Values.backend "embedded") (gt (int .Values.replicas) 1) }}
{{- fail "the embedded backend keeps its SQLite database on one volume and runs exactly 1 replica: set replicas to 1, or use backend nats or kafka to run more" }}
{{- end }}
{{- $reserved := list "host" "port" "backend" "dataDir" "secretsDir" "natsUrl" "natsPrefix" "natsReplicas" "natsUser" "natsPassword" "natsToken" "kafkaBrokers" "kafkaPrefix" "kafkaPartitions" "kafkaReplicationFactor" "kafkaTls" "kafkaSaslMechanism" "kafkaSaslUsername" "kafkaSaslPassword" }}
{{- range $key, $value := .Values.config }}
{{- if has $key $reserved }}
{{- fail (printf "config.%s is set by the chart: use containerPort, backend and the nats or kafka section of the values" $key) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.backend "nats") .Values.nats.token (or .Values.nats.user .Values.nats.password) }}
{{- fail "nats: give a token, or a user and password, not both" }}
{{- end }}
{{- if and (eq .Values.backend "kafka") (or .Values.kafka.sasl.username .Values.kafka.sasl.password .Values.kafka.existingSecret) (not .Values.kafka.sasl.mechanism) }}
{{- fail "kafka: SASL credentials need kafka.sasl.mechanism (plain, scram-sha-256 or scram-sha-512)" }}
{{- end }}
{{- end }}

{{/* The server's config file (YAML, camelCase option names; tributary --help lists them). */}}
{{- define "tributary.config" -}}
host: 0.0.0.0
port: {{ int .Values.containerPort }}
backend: {{ .Values.backend }}
dataDir: /data
secretsDir: /etc/tributary/secrets
{{- if eq .Values.backend "nats" }}
natsUrl: {{ required "nats.url is required with backend nats" .Values.nats.url | quote }}
natsPrefix: {{ .Values.nats.prefix | quote }}
natsReplicas: {{ int .Values.nats.streamReplicas }}
{{- else if eq .Values.backend "kafka" }}
kafkaBrokers: {{ required "kafka.brokers is required with backend kafka" .Values.kafka.brokers | quote }}
kafkaPrefix: {{ .Values.kafka.prefix | quote }}
kafkaPartitions: {{ int .Values.kafka.partitions }}
kafkaReplicationFactor: {{ int .Values.kafka.replicationFactor }}
kafkaTls: {{ .Values.kafka.tls }}
{{- if .Values.kafka.sasl.mechanism }}
kafkaSaslMechanism: {{ .Values.kafka.sasl.mechanism | quote }}
{{- end }}
{{- end }}
{{- if .Values.config }}
{{ toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* The Secret the backend's credentials come from: an existing one, or the chart's. */}}
{{- define "tributary.secretName" -}}
{{- if and (eq .Values.backend "nats") .Values.nats.existingSecret }}
{{- .Values.nats.existingSecret }}
{{- else if and (eq .Values.backend "kafka") .Values.kafka.existingSecret }}
{{- .Values.kafka.existingSecret }}
{{- else }}
{{- include "tributary.fullname" . }}
{{- end }}
{{- end }}

{{/* Environment variables of the credentials, read from the Secret (never from the ConfigMap). */}}
{{- define "tributary.secretEnv" -}}
{{- $secret := include "tributary.secretName" . }}
{{- if eq .Values.backend "nats" }}
{{- $existing := .Values.nats.existingSecret }}
{{- if or $existing .Values.nats.token }}
- name: TRIBUTARY_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: nats-token
      {{- if $existing }}
      optional: true
      {{- end }}
{{- end }}
{{- if or $existing .Values.nats.user }}
- name: TRIBUTARY_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: nats-user
      {{- if $existing }}
      optional: true
      {{- end }}
{{- end }}
{{- if or $existing .Values.nats.password }}
- name: TRIBUTARY_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: nats-password
      {{- if $existing }}
      optional: true
      {{- end }}
{{- end }}
{{- else if eq .Values.backend "kafka" }}
{{- $existing := .Values.kafka.existingSecret }}
{{- if or $existing .Values.kafka.sasl.username }}
- name: TRIBUTARY_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: kafka-sasl-username
{{- end }}
{{- if or $existing .Values.kafka.sasl.password }}
- name: TRIBUTARY_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: kafka-sasl-password
{{- end }}
{{- end }}
{{- end }}
