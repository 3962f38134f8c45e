import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

/**
 * Renders a Kustomize directory the way `kubectl kustomize` does, for the few features deploy/kubernetes uses:
 * `resources` (files and directories), `namespace`, `labels` (pairs, includeTemplates), `images`
 * (newName/newTag/digest) and `patches` given by `path` (strategic merge for built-in kinds, JSON merge for custom
 * resources). Anything else in a kustomization is refused, so a manifest never relies on a feature this renderer
 * would silently skip. It exists because CI has neither kustomize nor kubectl; clusters use `kubectl apply -k`.
 *
 *   npx tsx scripts/render-kustomize.ts deploy/kubernetes/overlays/gpu > rendered.yaml
 */

export type KubernetesObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: Array<{ pairs: Record<string, string>; includeTemplates?: boolean; includeSelectors?: boolean }>;
  images?: Array<{ name: string; newName?: string; newTag?: string; digest?: string }>;
  patches?: Array<{ path: string }>;
}

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);

// Kinds that live outside any namespace: `namespace:` must not be set on them.
const CLUSTER_SCOPED_KINDS = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'ClusterTriggerAuthentication',
]);

// Strategic merge keys of the list fields these manifests patch (from the Kubernetes API's patchMergeKey tags).
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
};

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Built-in API groups get strategic merge; custom resources (keda.sh…) get JSON merge patch, as in kustomize. */
function isBuiltIn(apiVersion: string): boolean {
  if (!apiVersion.includes('/')) return true;
  const group = apiVersion.split('/')[0];
  return !group.includes('.') || group.endsWith('.k8s.io');
}

function strategicMerge(target: Json, patch: Json, fieldName: string | undefined, strategic: boolean): Json {
  if (isObject(target) && isObject(patch)) {
    const merged: JsonObject = { ...target };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = key in merged ? strategicMerge(merged[key], value, key, strategic) : value;
    }
    return merged;
  }
  const mergeKey = fieldName ? MERGE_KEYS[fieldName] : undefined;
  if (strategic && mergeKey && Array.isArray(target) && Array.isArray(patch)) {
    const merged = [...target];
    for (const item of patch) {
      const index = isObject(item) ? merged.findIndex((existing) => isObject(existing) && existing[mergeKey] === item[mergeKey]) : -1;
      if (index >= 0) merged[index] = strategicMerge(merged[index], item, undefined, strategic);
      else merged.push(item);
    }
    return merged;
  }
  return patch;
}

async function readYamlDocuments(path: string): Promise<Json[]> {
  const documents = parseAllDocuments(await readFile(path, 'utf8'));
  return documents
    .map((document) => {
      if (document.errors.length > 0) throw new Error(`${path}: ${document.errors[0].message}`);
      return document.toJS() as Json;
    })
    .filter((value) => value !== null);
}

function asKubernetesObject(value: Json, source: string): KubernetesObject {
  if (!isObject(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isObject(value.metadata)) {
    throw new Error(`${source}: not a Kubernetes object (apiVersion, kind and metadata are required)`);
  }
  if (typeof value.metadata.name !== 'string') throw new Error(`${source}: ${value.kind} has no metadata.name`);
  return value as unknown as KubernetesObject;
}

function podTemplatesOf(object: KubernetesObject): JsonObject[] {
  const spec = object.spec;
  if (!isObject(spec)) return [];
  if (object.kind === 'Pod') return [object as unknown as JsonObject];
  if (object.kind === 'CronJob' && isObject(spec.jobTemplate) && isObject(spec.jobTemplate.spec) && isObject(spec.jobTemplate.spec.template)) {
    return [spec.jobTemplate.spec.template];
  }
  return isObject(spec.template) ? [spec.template] : [];
}

function imageName(image: string): string {
  const withoutDigest = image.split('@')[0];
  const lastSlash = withoutDigest.lastIndexOf('/');
  const lastColon = withoutDigest.lastIndexOf(':');
  return lastColon > lastSlash ? withoutDigest.slice(0, lastColon) : withoutDigest;
}

function applyImages(object: KubernetesObject, images: NonNullable<Kustomization['images']>): void {
  for (const template of podTemplatesOf(object)) {
    const podSpec = template.spec;
    if (!isObject(podSpec)) continue;
    for (const field of ['containers', 'initContainers']) {
      const containers = podSpec[field];
      if (!Array.isArray(containers)) continue;
      for (const container of containers) {
        if (!isObject(container) || typeof container.image !== 'string') continue;
        const current = container.image;
        const rule = images.find((image) => image.name === imageName(current));
        if (!rule) continue;
        const name = rule.newName ?? imageName(current);
        const tag = rule.newTag ?? (current.includes('@') ? undefined : current.slice(imageName(current).length + 1) || undefined);
        container.image = rule.digest ? `${name}@${rule.digest}` : tag ? `${name}:${tag}` : name;
      }
    }
  }
}

function applyLabels(object: KubernetesObject, rules: NonNullable<Kustomization['labels']>): void {
  for (const rule of rules) {
    if (rule.includeSelectors) throw new Error('labels.includeSelectors is not supported: selectors are immutable once applied');
    object.metadata.labels = { ...object.metadata.labels, ...rule.pairs };
    if (!rule.includeTemplates) continue;
    for (const template of podTemplatesOf(object)) {
      if (template === (object as unknown as JsonObject)) continue;
      const metadata = isObject(template.metadata) ? template.metadata : (template.metadata = {});
      metadata.labels = { ...(isObject(metadata.labels) ? metadata.labels : {}), ...rule.pairs };
    }
  }
}

const identity = (object: Pick<KubernetesObject, 'apiVersion' | 'kind' | 'metadata'>) =>
  `${object.apiVersion.split('/').length > 1 ? object.apiVersion.split('/')[0] : ''}/${object.kind}/${object.metadata.name}`;

/** Every object the kustomization at `directory` produces, in resource order, with its transformations applied. */
export async function renderKustomization(directory: string): Promise<KubernetesObject[]> {
  const root = resolve(directory);
  const [document] = await readYamlDocuments(join(root, 'kustomization.yaml'));
  if (!isObject(document)) throw new Error(`${root}/kustomization.yaml is empty`);
  for (const field of Object.keys(document)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`${root}/kustomization.yaml: field "${field}" is not supported by this renderer`);
  }
  const kustomization = document as unknown as Kustomization;

  const objects: KubernetesObject[] = [];
  for (const resource of kustomization.resources ?? []) {
    const path = join(root, resource);
    if ((await stat(path)).isDirectory()) objects.push(...(await renderKustomization(path)));
    else objects.push(...(await readYamlDocuments(path)).map((value) => asKubernetesObject(value, path)));
  }

  const seen = new Set<string>();
  for (const object of objects) {
    const key = identity(object);
    if (seen.has(key)) throw new Error(`${root}: ${key} is defined twice`);
    seen.add(key);
  }

  for (const { path } of kustomization.patches ?? []) {
    const patchPath = join(root, path);
    for (const value of await readYamlDocuments(patchPath)) {
      const patch = asKubernetesObject(value, patchPath);
      const index = objects.findIndex((object) => identity(object) === identity(patch));
      if (index < 0) throw new Error(`${patchPath}: no ${identity(patch)} to patch`);
      const target = objects[index];
      objects[index] = strategicMerge(target as unknown as Json, patch as unknown as Json, undefined, isBuiltIn(target.apiVersion)) as unknown as KubernetesObject;
    }
  }

  for (const object of objects) {
    if (kustomization.namespace && !CLUSTER_SCOPED_KINDS.has(object.kind)) object.metadata.namespace = kustomization.namespace;
    if (kustomization.labels) applyLabels(object, kustomization.labels);
    if (kustomization.images) applyImages(object, kustomization.images);
  }
  return objects;
}

/** The rendered objects as one multi-document YAML stream, what `kubectl apply -f -` takes. */
export function toYamlStream(objects: KubernetesObject[]): string {
  return objects.map((object) => stringify(object)).join('---\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const directory = process.argv[2];
  if (!directory) {
    process.stderr.write('Usage: npx tsx scripts/render-kustomize.ts <kustomization directory>\n');
    process.exit(2);
  }
  renderKustomization(directory).then(
    (objects) => process.stdout.write(toYamlStream(objects)),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
