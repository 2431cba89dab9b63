import {
  adjacencyMapToArray,
  getAdjacencyMap,
  getShortestPaths,
  getSimplePaths,
  joinPaths,
} from '@xstate/graph';
import type { StatePath, TraversalOptions } from '@xstate/graph';
import type { ActorLogic, AnyMachineSnapshot, EventObject } from 'xstate';

/**
 * Paths through a machine's abstract graph that together take every edge of
 * it: the simple (or shortest) paths first, then, for each edge none of them
 * takes (a cycle back to a visited state, a self-transition, a re-entry), the
 * shortest path to its source joined with that one step.
 */

export interface ModelSpec<
  TSnapshot extends AnyMachineSnapshot,
  TEvent extends EventObject,
  TInput,
> {
  /** The machine viewed as logic over the model's events (its own plus done/error/after ones). */
  logic: ActorLogic<TSnapshot, TEvent, TInput>;
  input: TInput;
  /** Example events per event type the definition handles, payload-free ones included. */
  samples: Partial<Record<string, readonly TEvent[]>>;
  /** What makes two snapshots the same vertex; must keep the graph finite. */
  serialize: (snapshot: TSnapshot) => string;
  base: 'simple' | 'shortest';
}

export interface ModelPaths<TSnapshot extends AnyMachineSnapshot, TEvent extends EventObject> {
  paths: StatePath<TSnapshot, TEvent>[];
  /** How many edges the base paths left out, each now taken by one added path. */
  added: number;
}

/**
 * The sample events of every type the definition handles in this snapshot that
 * would take a transition. A handled type without samples is an error, so a new
 * event in a machine cannot go unexplored quietly.
 */
export function enabledEvents<TEvent extends EventObject>(
  samples: Partial<Record<string, readonly TEvent[]>>,
  snapshot: AnyMachineSnapshot,
): TEvent[] {
  const types = new Set(snapshot._nodes.flatMap((node) => [...node.transitions.keys()]));
  return [...types]
    .flatMap((type): readonly TEvent[] => {
      const list = samples[type];
      if (!list) throw new Error(`no sample event for ${type}`);
      return list;
    })
    .filter((event) => snapshot.can(event));
}

export function traversalOptions<
  TSnapshot extends AnyMachineSnapshot,
  TEvent extends EventObject,
  TInput,
>(spec: ModelSpec<TSnapshot, TEvent, TInput>): TraversalOptions<TSnapshot, TEvent, TInput> {
  return {
    input: spec.input,
    events: (snapshot) => enabledEvents(spec.samples, snapshot),
    serializeState: (snapshot) => spec.serialize(snapshot),
    // A final state takes no more events (the root's DELETE would loop on `deleted`).
    stopWhen: (snapshot) => snapshot.status !== 'active',
  };
}

export function coveringPaths<
  TSnapshot extends AnyMachineSnapshot,
  TEvent extends EventObject,
  TInput,
>(spec: ModelSpec<TSnapshot, TEvent, TInput>): ModelPaths<TSnapshot, TEvent> {
  const options = traversalOptions(spec);
  const base =
    spec.base === 'simple'
      ? getSimplePaths(spec.logic, options)
      : getShortestPaths(spec.logic, options);
  const shortestTo = new Map(
    getShortestPaths(spec.logic, options).map((path) => [spec.serialize(path.state), path]),
  );
  const taken = new Set<string>();
  for (const path of base) {
    path.steps.forEach((step, i) => {
      const from = path.steps[i - 1];
      if (from) taken.add(edgeKey(spec.serialize(from.state), step.event));
    });
  }
  const paths = [...base];
  let added = 0;
  for (const { state, event, nextState } of adjacencyMapToArray(
    getAdjacencyMap(spec.logic, options),
  )) {
    const vertex = spec.serialize(state);
    if (taken.has(edgeKey(vertex, event))) continue;
    const head = shortestTo.get(vertex);
    const init = head?.steps[0];
    if (!head || !init) throw new Error(`no path reaches ${vertex}`);
    const step: StatePath<TSnapshot, TEvent> = {
      state: nextState,
      steps: [
        { state: head.state, event: init.event },
        { state: nextState, event },
      ],
      weight: 1,
    };
    paths.push(joinPaths(head, step));
    taken.add(edgeKey(vertex, event));
    added++;
  }
  return { paths, added };
}

function edgeKey(vertex: string, event: EventObject): string {
  return `${vertex} ${JSON.stringify(event)}`;
}
