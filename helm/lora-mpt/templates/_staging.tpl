{{- /*
Staging: getting the base model (and a Hub dataset) onto the volume before the run trains on it.
It runs as init containers of the coordinator pod, not as a pre-install hook Job: a hook runs before
the release's PVC exists, counts against `helm install --timeout` (a 13 GB download is longer),
and is not part of the release; an init container mounts the volume the coordinator then reads
(on the coordinator's node: ReadWriteOnce works), is retried with the coordinator's Job, and a
restarted pod resumes a partial download (lora-mpt fetch keeps blobs/*.incomplete). Workers wait
for the coordinator anyway: they only read the model once it answers.
*/ -}}

{{- /* "true" when run.baseModel / run.dataPath is a Hub id (org/name) and staging applies. */ -}}
{{- define "lora-mpt.stagesModel" -}}
{{- if and .Values.staging.enabled (regexMatch "^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$" .Values.run.baseModel) -}}
true
{{- end -}}
{{- end -}}
{{- define "lora-mpt.stagesData" -}}
{{- if and .Values.staging.enabled (regexMatch "^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$" .Values.run.dataPath) -}}
true
{{- end -}}
{{- end -}}

{{- /* The staging init containers, a YAML list ([] when nothing is staged). */ -}}
{{- define "lora-mpt.stagingContainers" -}}
{{- $root := . -}}
{{- $s := .Values.staging -}}
{{- $jobs := list -}}
{{- if include "lora-mpt.stagesModel" . }}
{{- $jobs = append $jobs (dict "name" "stage-model" "repo" .Values.run.baseModel "type" "model") }}
{{- end }}
{{- if include "lora-mpt.stagesData" . }}
{{- $jobs = append $jobs (dict "name" "stage-data" "repo" .Values.run.dataPath "type" "dataset") }}
{{- end }}
{{- if not $jobs }}[]{{ end }}
{{- range $jobs }}
- name: {{ .name }}
  image: {{ include "lora-mpt.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    - fetch
    - --repo_id
    - {{ .repo | quote }}
    - --repo_type
    - {{ .type }}
    {{- if and (eq .type "model") $s.urlList }}
    - --url_list
    - {{ $s.urlList | quote }}
    {{- end }}
    {{- with $s.endpoint }}
    - --endpoint
    - {{ . | quote }}
    {{- end }}
    - --log_format
    - json
  env:
    {{- include "lora-mpt.env" (dict "root" $root "component" $root.Values.coordinator) | nindent 4 }}
    {{- with $s.tokenSecret }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef: { name: {{ . | quote }}, key: HF_TOKEN }
    {{- end }}
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  {{- include "lora-mpt.containerSecurityContext" $root | nindent 2 }}
  volumeMounts:
    - { name: workspace, mountPath: {{ $root.Values.storage.mountPath }} }
    - { name: tmp, mountPath: /tmp }
{{- end }}
{{- end -}}

{{- /* The names of the staging init containers, as JSON (their exit 2 fails the Job at once). */ -}}
{{- define "lora-mpt.stagingNames" -}}
{{- $names := list -}}
{{- range (include "lora-mpt.stagingContainers" . | fromYamlArray) }}
{{- $names = append $names .name }}
{{- end }}
{{- $names | toJson -}}
{{- end -}}
