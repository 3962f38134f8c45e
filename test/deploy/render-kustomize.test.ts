import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { renderKustomization, toYamlStream } from '../../scripts/render-kustomize.js';

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: { app: app }
  template:
    metadata:
      labels: { app: app }
    spec:
      containers:
        - name: main
          image: example/app:1.0
          env:
            - { name: A, value: "1" }
            - { name: B, value: "2" }
        - name: sidecar
          image: example/sidecar@sha256:abc
`;

const scaledObject = `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: app
spec:
  scaleTargetRef: { name: app }
  triggers:
    - { type: redis, metadata: { listName: a } }
    - { type: redis, metadata: { listName: b } }
`;

describe('renderKustomization', () => {
  let dir: string;
  const write = async (path: string, text: string) => {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imagine-kustomize-'));
    await write('base/app.yaml', `${deployment}---\n${scaledObject}`);
    await write('base/kustomization.yaml', 'resources: [app.yaml]\nnamespace: apps\n');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('merges a patch into containers and env by name, as strategic merge does', async () => {
    await write(
      'overlay/patch.yaml',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: app }\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          env:\n            - { name: B, value: "20" }\n            - { name: C, value: "3" }\n',
    );
    await write('overlay/kustomization.yaml', 'resources: [../base]\npatches:\n  - path: patch.yaml\n');
    const [app] = (await renderKustomization(join(dir, 'overlay'))) as any[];
    expect(app.spec.template.spec.containers.map((c: any) => c.name)).toEqual(['main', 'sidecar']);
    expect(app.spec.template.spec.containers[0].env).toEqual([
      { name: 'A', value: '1' },
      { name: 'B', value: '20' },
      { name: 'C', value: '3' },
    ]);
  });

  it('replaces lists of a custom resource, as JSON merge patch does', async () => {
    await write(
      'overlay/patch.yaml',
      'apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: { name: app }\nspec:\n  maxReplicaCount: 3\n  triggers:\n    - { type: redis, metadata: { listName: c } }\n',
    );
    await write('overlay/kustomization.yaml', 'resources: [../base]\npatches:\n  - path: patch.yaml\n');
    const [, scaled] = (await renderKustomization(join(dir, 'overlay'))) as any[];
    expect(scaled.spec.maxReplicaCount).toBe(3);
    expect(scaled.spec.triggers).toEqual([{ type: 'redis', metadata: { listName: 'c' } }]);
    expect(scaled.spec.scaleTargetRef).toEqual({ name: 'app' });
  });

  it('sets image names and tags, keeping what a rule does not change', async () => {
    await write(
      'overlay/kustomization.yaml',
      'resources: [../base]\nimages:\n  - { name: example/app, newName: registry.test/app }\n  - { name: example/sidecar, newTag: "2.0" }\n',
    );
    const [app] = (await renderKustomization(join(dir, 'overlay'))) as any[];
    expect(app.spec.template.spec.containers.map((c: any) => c.image)).toEqual(['registry.test/app:1.0', 'example/sidecar:2.0']);
  });

  it('adds labels to objects and, when asked, to pod templates but never to selectors', async () => {
    await write('overlay/kustomization.yaml', 'resources: [../base]\nlabels:\n  - pairs: { team: ops }\n    includeTemplates: true\n');
    const [app] = (await renderKustomization(join(dir, 'overlay'))) as any[];
    expect(app.metadata.labels).toEqual({ team: 'ops' });
    expect(app.spec.template.metadata.labels).toEqual({ app: 'app', team: 'ops' });
    expect(app.spec.selector.matchLabels).toEqual({ app: 'app' });
    expect(app.metadata.namespace).toBe('apps');
  });

  it('refuses a kustomization field it does not implement', async () => {
    await write('overlay/kustomization.yaml', 'resources: [../base]\nnamePrefix: dev-\n');
    await expect(renderKustomization(join(dir, 'overlay'))).rejects.toThrow('field "namePrefix" is not supported');
  });

  it('refuses a patch whose target does not exist', async () => {
    await write('overlay/patch.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: other }\nspec: {}\n');
    await write('overlay/kustomization.yaml', 'resources: [../base]\npatches:\n  - path: patch.yaml\n');
    await expect(renderKustomization(join(dir, 'overlay'))).rejects.toThrow('no apps/Deployment/other to patch');
  });

  it('writes a YAML stream that reads back as the same objects', async () => {
    const objects = await renderKustomization(join(dir, 'base'));
    expect(parseAllDocuments(toYamlStream(objects)).map((document) => document.toJS())).toEqual(objects);
  });
});
