{{- /* Names are cut to 40 characters so "<name>-coordinator" stays a valid Job name (63). */ -}}
{{- define "lora-mpt.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lora-mpt.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lora-mpt.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lora-mpt.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- /* The operator's labels and annotations on every pod of the release (e.g. a Kueue queue, a
cost centre); the chart's own labels win over a podLabels key of the same name. */ -}}
{{- define "lora-mpt.podMetadata" -}}
{{- $root := .root -}}
{{- $own := include "lora-mpt.labels" $root | fromYaml -}}
{{- $_ := set $own "app.kubernetes.io/component" .component -}}
labels:
  {{- toYaml (merge $own ($root.Values.podLabels | default dict)) | nindent 2 }}
{{- with $root.Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "lora-mpt.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "lora-mpt.fullname" . }}-nats:4222
{{- else -}}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{- define "lora-mpt.claim" -}}
{{- .Values.storage.existingClaim | default (printf "%s-workspace" (include "lora-mpt.fullname" .)) -}}
{{- end -}}

{{- define "lora-mpt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "lora-mpt.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- /* "true" when the run is rendered as a JobSet (jobSet.enabled, or auto and the API is served). */ -}}
{{- define "lora-mpt.jobSet" -}}
{{- $v := .Values.jobSet.enabled -}}
{{- if or (eq (toString $v) "true") (and (eq (toString $v) "auto") (.Capabilities.APIVersions.Has "jobset.x-k8s.io/v1alpha2")) -}}
true
{{- end -}}
{{- end -}}

{{- /* A flag value as the lora-mpt CLI reads it: True/False, [a,b], integers without an exponent. */ -}}
{{- define "lora-mpt.flagValue" -}}
{{- if kindIs "bool" . -}}
{{- ternary "True" "False" . -}}
{{- else if kindIs "slice" . -}}
{{- printf "[%s]" (join "," .) -}}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{- /* Pod-level settings shared by every pod of the release. */ -}}
{{- define "lora-mpt.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.podSecurity.runAsUser }}
  runAsGroup: {{ .Values.podSecurity.runAsGroup }}
  fsGroup: {{ .Values.podSecurity.fsGroup }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "lora-mpt.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{- define "lora-mpt.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
{{- if kindIs "string" . }}
  - name: {{ . | quote }}
{{- else }}
  - name: {{ .name | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- /* Everything a coordinator or worker pod has besides its container: ServiceAccount without a
token, pull secrets, priority, security context, the workspace volume and a writable /tmp. */ -}}
{{- define "lora-mpt.runPodSpec" -}}
{{- $root := .root -}}
{{- $c := .component -}}
restartPolicy: Never
serviceAccountName: {{ include "lora-mpt.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- include "lora-mpt.imagePullSecrets" $root }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{ include "lora-mpt.podSecurityContext" $root }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "lora-mpt.affinity" . }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- $init := $c.initContainers | default list }}
{{- if .staging }}
{{- $init = concat (include "lora-mpt.stagingContainers" $root | fromYamlArray) $init }}
{{- end }}
{{- with $init }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: workspace
    persistentVolumeClaim:
      claimName: {{ include "lora-mpt.claim" $root }}
  - name: tmp
    emptyDir: {}
  - name: auth
    secret:
      secretName: {{ include "lora-mpt.authSecret" $root }}
      defaultMode: 0400
      # Only the keys this pod's role reads (lora-mpt.authItems): no worker sees coordinator.key.
      items:
        {{- range $key := include "lora-mpt.authItems" (dict "root" $root "role" .role) | fromYamlArray }}
        - { key: {{ $key }}, path: {{ $key }} }
        {{- end }}
{{- with $c.extraVolumes }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- /* NATS as the run's user, over TLS checked against nats-ca.crt. */ -}}
{{- define "lora-mpt.natsAuthArgs" -}}
- --nats_user
- {{ .Values.auth.natsUser | quote }}
- --nats_password_file
- /etc/lora-mpt/auth/nats-password
- --nats_ca
- /etc/lora-mpt/auth/nats-ca.crt
{{- end -}}

{{- /* The keys of the auth Secret a pod of `role` mounts (docs/security.md): the coordinator its
certificate and key, the CA that checks workers, the run token; a worker the CA, the run token and
the certificates of the worker slots (one pod template serves every index, so each slot's
certificate is there; none of them can act as the coordinator); both the NATS password and CA. */ -}}
{{- define "lora-mpt.authItems" -}}
{{- $fullname := include "lora-mpt.fullname" .root -}}
{{- $keys := list "ca.crt" "run-token" "nats-password" "nats-ca.crt" -}}
{{- if eq .role "coordinator" -}}
{{- $keys = concat $keys (list "coordinator.crt" "coordinator.key") -}}
{{- else -}}
{{- range $i := until (int .root.Values.workers.replicas) -}}
{{- $keys = concat $keys (list (printf "%s-worker-%d.crt" $fullname $i) (printf "%s-worker-%d.key" $fullname $i)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $keys -}}
{{- end -}}

{{- /* The Secret with the run's gRPC credentials (templates/auth.yaml, or auth.existingSecret). */ -}}
{{- define "lora-mpt.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "lora-mpt.fullname" .)) -}}
{{- end -}}

{{- /* Environment of the lora-mpt processes: a writable HOME and the Hugging Face cache on the volume. */ -}}
{{- define "lora-mpt.env" -}}
- name: HOME
  value: /tmp
- name: HF_HOME
  value: {{ printf "%s/huggingface" (.root.Values.storage.mountPath | trimSuffix "/") | quote }}
{{- with .component.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lora-mpt.probes" -}}
startupProbe:
  httpGet: { path: /healthz, port: metrics }
  {{- toYaml .startupProbe | nindent 2 }}
livenessProbe:
  httpGet: { path: /healthz, port: metrics }
  {{- toYaml .livenessProbe | nindent 2 }}
{{- end -}}

{{- /*
How the run's pods fail. restartPolicy is Never (podFailurePolicy requires it), so a failed pod is
replaced by a new one that the Job counts against backoffLimit, except:
  - exit code 2 (a bad flag, a missing or incomplete model; also of a staging init container,
    _staging.tpl), and for a worker 3 (refused by the coordinator: another run, another
    protocol version), is permanent: the Job fails at once instead of retrying what cannot work;
  - a pod disrupted by the cluster (preemption, eviction, node drain: DisruptionTarget) is
    replaced without counting.
A pod that exits 0 is done and never started again.
*/ -}}
{{- define "lora-mpt.podFailurePolicy" -}}
podReplacementPolicy: Failed
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: {{ .container }}
        operator: In
        values: {{ .exitCodes | toJson }}
    {{- range .initContainers }}
    - action: FailJob
      onExitCodes:
        containerName: {{ . }}
        operator: In
        values: [2]
    {{- end }}
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- end -}}

{{- /* The coordinator's Job spec (plain Job, or a JobSet's replicated job). */ -}}
{{- define "lora-mpt.coordinatorJobSpec" -}}
{{- $fullname := include "lora-mpt.fullname" . -}}
{{- $v := .Values -}}
completions: 1
parallelism: 1
backoffLimit: {{ $v.coordinator.backoffLimit }}
{{- with $v.run.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{ include "lora-mpt.podFailurePolicy" (dict "container" "coordinator" "exitCodes" (list 2) "initContainers" (include "lora-mpt.stagingNames" . | fromJsonArray)) }}
template:
  metadata:
    {{- include "lora-mpt.podMetadata" (dict "root" . "component" "coordinator") | nindent 4 }}
  spec:
    {{- include "lora-mpt.runPodSpec" (dict "root" . "component" $v.coordinator "role" "coordinator" "staging" true) | nindent 4 }}
    containers:
      - name: coordinator
        image: {{ include "lora-mpt.image" . }}
        imagePullPolicy: {{ $v.image.pullPolicy }}
        # The run's flags come from the ConfigMap <fullname>-run (one env var per flag), so a
        # kustomize overlay changes a run by patching that ConfigMap.
        envFrom:
          - prefix: FLAG_
            configMapRef:
              name: {{ $fullname }}-run
        env:
          {{- include "lora-mpt.env" (dict "root" . "component" $v.coordinator) | nindent 10 }}
        args:
          - coordinator
          {{- range $k, $_ := (include "lora-mpt.runFlags" . | fromYaml) }}
          - "--{{ $k }}=$(FLAG_{{ $k }})"
          {{- end }}
          - --listen
          - "0.0.0.0:{{ $v.coordinator.grpcPort }}"
          - --nats
          - {{ include "lora-mpt.natsUrl" . | quote }}
          - --metrics_port
          - {{ $v.coordinator.metricsPort | quote }}
          - --metrics_host
          - "0.0.0.0"
          - --tls_cert
          - /etc/lora-mpt/auth/coordinator.crt
          - --tls_key
          - /etc/lora-mpt/auth/coordinator.key
          - --tls_client_ca
          - /etc/lora-mpt/auth/ca.crt
          - --run_token_file
          - /etc/lora-mpt/auth/run-token
          {{- include "lora-mpt.natsAuthArgs" . | nindent 10 }}
          {{- with $v.coordinator.extraArgs }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        ports:
          - { name: grpc, containerPort: {{ $v.coordinator.grpcPort }} }
          - { name: metrics, containerPort: {{ $v.coordinator.metricsPort }} }
        readinessProbe:
          httpGet: { path: /healthz, port: metrics }
          periodSeconds: 10
        {{- include "lora-mpt.probes" $v.coordinator | nindent 8 }}
        resources:
          {{- toYaml $v.coordinator.resources | nindent 10 }}
        {{- include "lora-mpt.containerSecurityContext" . | nindent 8 }}
        volumeMounts:
          - { name: workspace, mountPath: {{ $v.storage.mountPath }} }
          - { name: tmp, mountPath: /tmp }
          - { name: auth, mountPath: /etc/lora-mpt/auth, readOnly: true }
          {{- with $v.coordinator.extraVolumeMounts }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
{{- end -}}

{{- /* The run's flags (name: value as the CLI reads it), the data of the <fullname>-run ConfigMap:
the paths, the training flags and the coordinator's run policy. */ -}}
{{- define "lora-mpt.runFlags" -}}
{{- $flags := dict "base_model" .Values.run.baseModel "data_path" .Values.run.dataPath "output_dir" .Values.run.outputDir -}}
{{- if .Values.run.rehearsal }}
{{- /* A rehearsal reads the model as a config and writes beside the real run's output, never in it
(the real run would resume from its synthetic checkpoints). */ -}}
{{- $model := .Values.run.baseModel -}}
{{- $_ := set $flags "base_model" (hasPrefix "synthetic:" $model | ternary $model (printf "synthetic:%s" $model)) -}}
{{- $_ := set $flags "output_dir" (printf "%s-rehearsal" (trimSuffix "/" .Values.run.outputDir)) -}}
{{- end }}
{{- $_ := set $flags "min_workers" .Values.coordinator.minWorkers -}}
{{- $_ := set $flags "heartbeat_timeout_ms" .Values.coordinator.heartbeatTimeoutMs -}}
{{- /* A null list (lora_target_modules: null) is the flag left out: its default, e.g. the family's targets. */ -}}
{{- range $k, $v := .Values.run.training }}
{{- if not (kindIs "invalid" $v) }}
{{- $_ := set $flags $k $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $flags }}
{{ $k }}: {{ include "lora-mpt.flagValue" $v | quote }}
{{- end }}
{{- end -}}

{{- /* The workers' Indexed Job spec: completion index i is GPU slot i, worker id <fullname>-worker-i. */ -}}
{{- define "lora-mpt.workerJobSpec" -}}
{{- $fullname := include "lora-mpt.fullname" . -}}
{{- $v := .Values -}}
completionMode: Indexed
completions: {{ $v.workers.replicas }}
parallelism: {{ $v.workers.replicas }}
backoffLimit: {{ $v.workers.backoffLimit }}
{{- with $v.run.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- if semverCompare ">=1.31-0" .Capabilities.KubeVersion.Version }}
# A worker exits 0 only when the coordinator says the run is finished: the first one that does
# completes the Job, and workers still pending or reconnecting are stopped (Kubernetes >= 1.31).
successPolicy:
  rules:
    - succeededCount: 1
{{- end }}
{{ include "lora-mpt.podFailurePolicy" (dict "container" "worker" "exitCodes" (list 2 3)) }}
template:
  metadata:
    {{- include "lora-mpt.podMetadata" (dict "root" . "component" "worker") | nindent 4 }}
  spec:
    {{- include "lora-mpt.runPodSpec" (dict "root" . "component" $v.workers "role" "worker") | nindent 4 }}
    containers:
      - name: worker
        image: {{ include "lora-mpt.image" . }}
        imagePullPolicy: {{ $v.image.pullPolicy }}
        env:
          - name: WORKER_INDEX
            valueFrom:
              fieldRef:
                fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
          # The node this pod runs on: workers on one node form one node of the hierarchical all-reduce.
          - name: NODE_NAME
            valueFrom:
              fieldRef:
                fieldPath: spec.nodeName
          {{- $res := include "lora-mpt.workerResources" . | fromYaml }}
          {{- if or (hasKey ($res.limits | default dict) "nvidia.com/gpu") (hasKey ($res.requests | default dict) "nvidia.com/gpu") }}
          # A pod given a GPU computes on it or stops, naming why (docs/backends.md#gpu-workers).
          - { name: LORA_MPT_REQUIRE_GPU, value: "1" }
          {{- end }}
          {{- if $v.workers.tf32 }}
          - { name: LORA_MPT_TF32, value: "1" }
          {{- end }}
          {{- include "lora-mpt.env" (dict "root" . "component" $v.workers) | nindent 10 }}
        args:
          - worker
          - --coordinator
          - "{{ $fullname }}-coordinator:{{ $v.coordinator.grpcPort }}"
          - --nats
          - {{ include "lora-mpt.natsUrl" . | quote }}
          - --worker_id
          - "{{ $fullname }}-worker-$(WORKER_INDEX)"
          - --node_name
          - "$(NODE_NAME)"
          {{- if and $v.nats.enabled $v.nats.leaf.enabled }}
          # The leaf server on this pod's node (a node-local Service), the cluster while it is down.
          - --node_nats_url
          - "nats://{{ $fullname }}-nats-leaf:4222"
          {{- end }}
          {{- if $v.run.rehearsal }}
          # A rehearsal: no model, each micro-batch takes the modelled GPU's time (docs/scale.md).
          - --backend
          - synthetic
          - --gpu_profile
          - {{ $v.run.gpuProfile | quote }}
          - --gpu_mfu
          - {{ $v.run.gpuMfu | quote }}
          {{- else }}
          - --backend
          - {{ $v.workers.backend | quote }}
          {{- end }}
          - --max_in_flight
          - {{ $v.workers.maxInFlight | quote }}
          - --metrics_port
          - {{ $v.workers.metricsPort | quote }}
          - --metrics_host
          - "0.0.0.0"
          # Mutual TLS: the certificate's common name is this worker's id; the run token proves
          # membership of this run.
          - --tls_ca
          - /etc/lora-mpt/auth/ca.crt
          - --tls_cert
          - "/etc/lora-mpt/auth/{{ $fullname }}-worker-$(WORKER_INDEX).crt"
          - --tls_key
          - "/etc/lora-mpt/auth/{{ $fullname }}-worker-$(WORKER_INDEX).key"
          - --token_file
          - /etc/lora-mpt/auth/run-token
          {{- include "lora-mpt.natsAuthArgs" . | nindent 10 }}
          {{- with $v.workers.extraArgs }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        ports:
          - { name: metrics, containerPort: {{ $v.workers.metricsPort }} }
        {{- include "lora-mpt.probes" $v.workers | nindent 8 }}
        resources:
          {{- include "lora-mpt.workerResources" . | nindent 10 }}
        {{- include "lora-mpt.containerSecurityContext" . | nindent 8 }}
        volumeMounts:
          - { name: workspace, mountPath: {{ $v.storage.mountPath }}, readOnly: true }
          - { name: tmp, mountPath: /tmp }
          - { name: auth, mountPath: /etc/lora-mpt/auth, readOnly: true }
          {{- with $v.workers.extraVolumeMounts }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
{{- end -}}

{{- /* A worker's resources: workers.resources, without the GPU in a rehearsal (it models one). */ -}}
{{- define "lora-mpt.workerResources" -}}
{{- $res := deepCopy (.Values.workers.resources | default dict) -}}
{{- if .Values.run.rehearsal -}}
{{- range $kind := list "requests" "limits" -}}
{{- if hasKey $res $kind -}}
{{- $_ := set $res $kind (omit (get $res $kind) "nvidia.com/gpu") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}
