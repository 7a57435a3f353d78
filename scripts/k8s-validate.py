#!/usr/bin/env python3
"""Strict validation of rendered Kubernetes objects: an unknown field anywhere fails.

Core objects (Job, Service, ...) are checked by kubernetes-validate against the OpenAPI schemas of
each Kubernetes version given with -k. Custom resources have no schema there, so:
  - JobSet (jobset.x-k8s.io/v1alpha2): the envelope against the JobSet models of the
    kubeflow-trainer-api package, and each replicated Job template as a batch/v1 Job, per version;
  - ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1): against the models of
    cloudcoil-models-prometheus-operator.
An object of any other kind fails: nothing passes unchecked. Runs in the virtual environment that
scripts/setup-k8s-validate.sh makes. Prints one line per object and version (after the file's path when several files are given);
exits 1 on a failure.

  k8s-validate.py -k 1.29 -k 1.32 rendered.yaml [more.yaml ...]   (or - for stdin)
"""

import argparse
import sys
import types
import typing

import kubernetes_validate
import pydantic
import yaml


def _unwrap(tp):
    """The model or container type inside Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def unknown_fields(model, data, path):
    """Paths in `data` that the pydantic `model` (recursively) has no field for."""
    if not isinstance(data, dict):
        return []
    by_key = {(f.alias or name): f for name, f in model.model_fields.items()}
    found = []
    for key, value in data.items():
        field = by_key.get(key)
        if field is None:
            found.append(f"{path}.{key}")
            continue
        found += _unknown_in(field.annotation, value, f"{path}.{key}")
    return found


def _unknown_in(tp, value, path):
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, typing.List) and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unknown_in(args[0], v, f"{path}[{i}]")]
    if origin in (dict, typing.Dict) and isinstance(value, dict) and len(args) == 2:
        return [p for k, v in value.items() for p in _unknown_in(args[1], v, f"{path}.{k}")]
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return unknown_fields(tp, value, path)
    return []


def check_model(model, obj):
    """Errors of `obj` against a pydantic model: unknown fields, then types and required fields."""
    errors = [f"{p.lstrip('.')}: unknown field" for p in unknown_fields(model, obj, "")]
    try:
        model.model_validate(obj)
    except pydantic.ValidationError as e:
        errors += [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
    return errors


def check_core(obj, version):
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return []
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path)
        return [f"{where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [e.message]


def check_jobset(obj, version):
    from kubeflow_trainer_api.models.jobset_v1alpha2_job_set import JobsetV1alpha2JobSet

    envelope = yaml.safe_load(yaml.safe_dump(obj))
    templates = []
    for rj in envelope.get("spec", {}).get("replicatedJobs", []):
        templates.append((rj.get("name"), rj.pop("template", None)))
        rj["template"] = {}  # checked below as a Job against the Kubernetes schema
    errors = check_model(JobsetV1alpha2JobSet, envelope)
    for name, template in templates:
        if not isinstance(template, dict):
            errors.append(f"spec.replicatedJobs[{name}].template: missing")
            continue
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {**template.get("metadata", {}), "name": f"{obj['metadata']['name']}-{name}"},
            "spec": template.get("spec"),
        }
        errors += [f"spec.replicatedJobs[{name}].template.{e}" for e in check_core(job, version)]
    return errors


def check_service_monitor(obj, _version):
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    return check_model(ServiceMonitor, obj)


def check_prometheus_rule(obj, _version):
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule

    return check_model(PrometheusRule, obj)


CUSTOM = {
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): check_jobset,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): check_service_monitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): check_prometheus_rule,
}


def check(obj, version):
    custom = CUSTOM.get((obj.get("apiVersion"), obj.get("kind")))
    # Anything else must be a kind kubernetes-validate has a schema for (else SchemaNotFoundError).
    return custom(obj, version) if custom else check_core(obj, version)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", action="append", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failed = 0
    checked = 0
    for path in args.files:
        where = f"{path}: " if len(args.files) > 1 else ""
        stream = sys.stdin if path == "-" else open(path)
        for obj in yaml.safe_load_all(stream):
            if not obj:
                continue
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            for version in args.kubernetes_version:
                checked += 1
                errors = check(obj, version)
                if errors:
                    failed += 1
                    for e in errors:
                        print(f"{where}FAIL {name} (Kubernetes {version}): {e}")
                else:
                    print(f"{where}ok   {name} (Kubernetes {version})")
    print(f"k8s-validate: {checked - failed} of {checked} object checks valid")
    sys.exit(1 if failed or checked == 0 else 0)


if __name__ == "__main__":
    main()
