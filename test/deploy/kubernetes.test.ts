import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { renderKustomization, type KubernetesObject } from '../../scripts/render-kustomize.js';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { queueNameForModel } from '../../src/queue/job.js';
import { listenersOf, loadConfig, type Role } from '../../src/service/config.js';

/** The model class that validates each kind the manifests use; a new kind must be added here to pass CI. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
};

const TARGETS = ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/cpu', 'deploy/kubernetes/overlays/gpu', 'deploy/kubernetes/overlays/webgpu'];

// What an operator fills into secret.yaml before the bot can start (the committed file leaves chat tokens empty):
// Slack and Discord over HTTP, so that every listener the bot can have is open.
const OPERATOR_SECRETS = {
  DISCORD_TOKEN: 'operator-token',
  DISCORD_APP_ID: '1234567890',
  DISCORD_PUBLIC_KEY: 'abababababababababababababababababababababababababababababababab',
  SLACK_BOT_TOKEN: 'xoxb-1',
  SLACK_SIGNING_SECRET: 'signing',
};

// Rendered manifests are plain parsed YAML: the schema checks above are what types them.
type Any = any;

const find = (objects: KubernetesObject[], kind: string, name: string): Any => {
  const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  if (!object) throw new Error(`no ${kind} ${name} in the rendering`);
  return object;
};

const containerOf = (objects: KubernetesObject[], deployment: string): Any => find(objects, 'Deployment', deployment).spec.template.spec.containers[0];

/** The environment a container starts with: its envFrom sources in order, then its own env entries. */
function containerEnv(objects: KubernetesObject[], container: Any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, find(objects, 'ConfigMap', source.configMapRef.name).data);
    if (source.secretRef) Object.assign(env, find(objects, 'Secret', source.secretRef.name).stringData, OPERATOR_SECRETS);
  }
  for (const entry of container.env ?? []) env[entry.name] = entry.value;
  return env;
}

describe.each(TARGETS)('kubernetes manifests rendered from %s', (target) => {
  it('validates every object against its Kubernetes or KEDA schema', async () => {
    const objects = await renderKustomization(target);
    expect(objects.length).toBeGreaterThan(10);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      if (!Model) throw new Error(`no schema registered for ${object.apiVersion} ${object.kind}`);
      expect(() => new Model(object as never).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('puts every namespaced object in the imagine namespace, labelled as part of imagine-bot', async () => {
    for (const object of await renderKustomization(target)) {
      expect(object.metadata.labels?.['app.kubernetes.io/part-of']).toBe('imagine-bot');
      if (object.kind !== 'Namespace') expect(object.metadata.namespace, `${object.kind} ${object.metadata.name}`).toBe('imagine');
    }
  });

  it('refers only to ConfigMaps, Secrets, volumes and workloads that it defines', async () => {
    const objects = await renderKustomization(target);
    for (const object of objects as Any[]) {
      const podSpec = object.spec?.template?.spec;
      if (podSpec) {
        for (const container of podSpec.containers) {
          for (const source of container.envFrom ?? []) {
            if (source.configMapRef) find(objects, 'ConfigMap', source.configMapRef.name);
            if (source.secretRef) find(objects, 'Secret', source.secretRef.name);
          }
          const volumeNames = [
            ...(podSpec.volumes ?? []).map((volume: Any) => volume.name),
            ...(object.spec.volumeClaimTemplates ?? []).map((claim: Any) => claim.metadata.name),
          ];
          for (const mount of container.volumeMounts ?? []) {
            expect(volumeNames, `${object.metadata.name} mounts ${mount.name}`).toContain(mount.name);
          }
        }
        for (const volume of podSpec.volumes ?? []) {
          if (volume.persistentVolumeClaim) find(objects, 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
        }
        expect(object.spec.selector?.matchLabels ?? {}, object.metadata.name).toEqual(
          object.kind === 'Job' ? {} : expect.objectContaining({ 'app.kubernetes.io/name': object.metadata.name }),
        );
      }
      if (object.kind === 'ScaledObject') {
        find(objects, 'Deployment', object.spec.scaleTargetRef.name);
        for (const trigger of object.spec.triggers) find(objects, 'TriggerAuthentication', trigger.authenticationRef.name);
      }
      if (object.kind === 'TriggerAuthentication') {
        for (const ref of object.spec.secretTargetRef) expect(Object.keys(find(objects, 'Secret', ref.name).stringData)).toContain(ref.key);
      }
    }
  });

  it('gives each role an environment that loadConfig accepts', async () => {
    const objects = await renderKustomization(target);
    for (const name of ['imagine-bot', 'imagine-worker']) {
      const container = containerOf(objects, name);
      const role = container.args[0] as Role;
      expect(['bot', 'worker']).toContain(role);
      const config = loadConfig(containerEnv(objects, container), role);
      expect(config.database.kind, `${name} must use the shared PostgreSQL`).toBe('postgres');
      const httpPort = container.ports.find((port: Any) => port.name === 'http').containerPort;
      expect(httpPort).toBe(config.httpPort);
    }
  });

  it('declares every port each role listens on, bound to all addresses, and the bot’s Service exposes each of them', async () => {
    const objects = await renderKustomization(target);
    for (const name of ['imagine-bot', 'imagine-worker']) {
      const container = containerOf(objects, name);
      const config = loadConfig(containerEnv(objects, container), container.args[0] as Role);
      expect(config.host, name).toBe('0.0.0.0');
      const declared = Object.fromEntries(container.ports.map((port: Any) => [port.name, port.containerPort]));
      expect(declared, name).toEqual(Object.fromEntries(listenersOf(config).map((listener) => [listener.name, listener.port])));
    }
    const service = find(objects, 'Service', 'imagine-bot');
    const declared = containerOf(objects, 'imagine-bot').ports.map((port: Any) => port.name);
    expect(service.spec.ports.map((port: Any) => port.targetPort)).toEqual(declared);
  });

  it('probes liveness on /healthz and readiness on /readyz of the health port', async () => {
    const objects = await renderKustomization(target);
    for (const name of ['imagine-bot', 'imagine-worker']) {
      const container = containerOf(objects, name);
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    }
  });

  it('scales workers from zero on the shipped model’s queue: its wait list, prioritized set and active list', async () => {
    const objects = await renderKustomization(target);
    const scaledObject = find(objects, 'ScaledObject', 'imagine-worker');
    const config = find(objects, 'ConfigMap', 'imagine-config').data;
    // The worker image ships models/default at MODEL_DIR; its queue is named after the model inside, not the folder.
    expect(config.MODEL_DIR).toBe('/app/models/default');
    const { name } = await describeModelFolder('models/default');
    const queue = `${config.QUEUE_PREFIX}:${queueNameForModel(name)}`;
    expect(scaledObject.spec.minReplicaCount).toBe(0);
    expect(scaledObject.spec.triggers.map((trigger: Any) => [trigger.type, trigger.metadata.listName])).toEqual([
      ['redis', `${queue}:wait`],
      ['redis', `${queue}:prioritized`],
      ['redis', `${queue}:active`],
    ]);
    expect(find(objects, 'Deployment', 'imagine-worker').spec.replicas, 'KEDA owns the replica count').toBeUndefined();
  });

  it('keeps a PodDisruptionBudget over the workers', async () => {
    const objects = await renderKustomization(target);
    const budget = find(objects, 'PodDisruptionBudget', 'imagine-worker');
    expect(budget.spec.selector.matchLabels).toEqual(find(objects, 'Deployment', 'imagine-worker').spec.selector.matchLabels);
  });

  it('runs Redis with noeviction, so queued jobs are never dropped', async () => {
    const redis = find(await renderKustomization(target), 'StatefulSet', 'redis').spec.template.spec.containers[0];
    expect(redis.args.join(' ')).toContain('--maxmemory-policy noeviction');
  });

  it('has a migration Job that runs the bot image against the database', async () => {
    const objects = await renderKustomization(target);
    const job = find(objects, 'Job', 'imagine-migrate').spec.template.spec;
    expect(job.containers[0].image).toBe(containerOf(objects, 'imagine-bot').image);
    expect(containerEnv(objects, job.containers[0]).DATABASE_URL).toMatch(/^postgres/);
  });
});

describe('kubernetes overlays', () => {
  /** The worker container of a GPU overlay, after checking it gets its image, one NVIDIA GPU and a GPU node. */
  const gpuWorker = (objects: Any[], image: string) => {
    const podSpec = find(objects, 'Deployment', 'imagine-worker').spec.template.spec;
    const worker = podSpec.containers[0];
    expect(worker.image).toBe(image);
    expect(worker.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(podSpec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(podSpec.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    return worker;
  };

  it('gives each GPU worker one NVIDIA GPU, a GPU node and the CUDA provider', async () => {
    const objects = await renderKustomization('deploy/kubernetes/overlays/gpu');
    const worker = gpuWorker(objects, 'registry.example.com/imagine-worker-cuda:0.1.0');
    expect(loadConfig(containerEnv(objects, worker), 'worker').ortProviders).toEqual(['cuda']);
    // The patch merged into the base's env list rather than replacing it.
    expect(worker.env.map((entry: Any) => entry.name)).toEqual(['ORT_PROVIDERS', 'WORKER_CONCURRENCY']);
    expect(find(objects, 'ScaledObject', 'imagine-worker').spec.triggers).toHaveLength(3);
  });

  it('gives each WebGPU worker one NVIDIA GPU, a GPU node, the WebGPU provider and the driver’s graphics (Vulkan) capability', async () => {
    const objects = await renderKustomization('deploy/kubernetes/overlays/webgpu');
    const worker = gpuWorker(objects, 'registry.example.com/imagine-worker-webgpu:0.1.0');
    const env = containerEnv(objects, worker);
    expect(loadConfig(env, 'worker').ortProviders).toEqual(['webgpu']);
    expect(env.NVIDIA_DRIVER_CAPABILITIES.split(',')).toContain('graphics');
    expect(worker.env.map((entry: Any) => entry.name)).toEqual(['ORT_PROVIDERS', 'WORKER_CONCURRENCY', 'NVIDIA_DRIVER_CAPABILITIES']);
  });

  it('runs CPU workers from the bot image with no GPU request', async () => {
    const objects = await renderKustomization('deploy/kubernetes/overlays/cpu');
    const podSpec = find(objects, 'Deployment', 'imagine-worker').spec.template.spec;
    const worker = podSpec.containers[0];
    expect(worker.image).toBe('registry.example.com/imagine-bot:0.1.0');
    expect(worker.resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(podSpec.nodeSelector).toBeUndefined();
    const config = loadConfig(containerEnv(objects, worker), 'worker');
    expect(config.ortProviders).toEqual(['cpu']);
    expect(config.ortThreads).toBe(Number(worker.resources.requests.cpu));
  });
});
