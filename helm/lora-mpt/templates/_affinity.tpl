{{- /* A coordinator's or worker's affinity: the component's own, and on a volume without
ReadWriteMany (ReadWriteOnce: attached to one node at a time) a required affinity to the node of the
run's other coordinator and worker pods, so every one of them lands where the first one did. */ -}}
{{- define "lora-mpt.affinity" -}}
{{- $root := .root -}}
{{- $aff := deepCopy (.component.affinity | default dict) -}}
{{- if not (has "ReadWriteMany" $root.Values.storage.accessModes) -}}
{{- $run := dict "key" "app.kubernetes.io/component" "operator" "In" "values" (list "coordinator" "worker") -}}
{{- $selector := dict "matchLabels" (dict "app.kubernetes.io/instance" $root.Release.Name) "matchExpressions" (list $run) -}}
{{- $term := dict "labelSelector" $selector "topologyKey" "kubernetes.io/hostname" -}}
{{- $pa := get $aff "podAffinity" | default dict -}}
{{- $req := get $pa "requiredDuringSchedulingIgnoredDuringExecution" | default list -}}
{{- $_ := set $pa "requiredDuringSchedulingIgnoredDuringExecution" (append $req $term) -}}
{{- $_ := set $aff "podAffinity" $pa -}}
{{- end -}}
{{- with $aff }}{{ toYaml . }}{{ end -}}
{{- end -}}
