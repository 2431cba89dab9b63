import { isMachineSnapshot } from 'xstate';
import type {
  AnyMachineSnapshot,
  AnyStateMachine,
  AnyStateNode,
  AnyTransitionDefinition,
  InspectionEvent,
} from 'xstate';

/**
 * Counts what a machine's real actors actually did against what its definition
 * allows. A transition is counted per atomic state it can be taken from, so
 * `running`'s CANCEL from `running.queued` and from `running.active` are two
 * pairs: the definition, not a hand-written list, says what there is to reach.
 */

/** Every state node under the root, by id (e.g. `job.running.queued`). */
export function stateIds(machine: AnyStateMachine): string[] {
  return descendants(machine.root).map((node) => node.id);
}

/**
 * Every (atomic source state, transition) pair the definition allows: the
 * `on`, invoke `onDone`/`onError` and `after` transitions (all of them in
 * `transitions`) and the `always` ones, each guarded branch on its own.
 */
export function transitionPairs(machine: AnyStateMachine): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const node of [machine.root, ...descendants(machine.root)]) {
    for (const transition of ownTransitions(node)) {
      for (const source of atomicSources(node)) {
        pairs.set(pairKey(source, transition), pairLabel(source, transition));
      }
    }
  }
  return pairs;
}

export interface CoverageReport {
  line: string;
  missingStates: string[];
  missingTransitions: string[];
}

/** Collects the states and transitions taken by every actor it inspects. */
export class CoverageRecorder {
  private readonly states = new Set<string>();
  private readonly pairs = new Set<string>();
  /** The last snapshot seen per actor: the state a microstep starts from. */
  private readonly last = new WeakMap<object, AnyMachineSnapshot>();

  constructor(private readonly machine: AnyStateMachine) {}

  /** Pass as `createActor(machine, { inspect: recorder.inspect })`. */
  readonly inspect = (event: InspectionEvent): void => {
    if (event.type !== '@xstate.microstep' && event.type !== '@xstate.snapshot') return;
    const snapshot = event.snapshot;
    if (!isMachineSnapshot(snapshot)) return;
    if (event.type === '@xstate.microstep') {
      const before = this.last.get(event.actorRef);
      for (const transition of event._transitions) {
        const source = sourceOf(transition, before);
        this.pairs.add(pairKey(source, transition));
      }
    }
    this.visit(snapshot);
    this.last.set(event.actorRef, snapshot);
  };

  /** Records the states of a snapshot seen outside a microstep (an actor's first one). */
  visit(snapshot: AnyMachineSnapshot): void {
    for (const node of snapshot._nodes) if (node.parent) this.states.add(node.id);
  }

  report(name: string): CoverageReport {
    const allStates = stateIds(this.machine);
    const allPairs = transitionPairs(this.machine);
    const missingStates = allStates.filter((id) => !this.states.has(id));
    const missingTransitions = [...allPairs]
      .filter(([key]) => !this.pairs.has(key))
      .map(([, label]) => label);
    const stateCount = allStates.length - missingStates.length;
    const pairCount = allPairs.size - missingTransitions.length;
    const line =
      `model coverage ${name}: states ${stateCount}/${allStates.length} (${percent(stateCount, allStates.length)}), ` +
      `transitions ${pairCount}/${allPairs.size} (${percent(pairCount, allPairs.size)})`;
    return { line, missingStates, missingTransitions };
  }
}

function descendants(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states).flatMap((child) => [child, ...descendants(child)]);
}

/** `transitions` already holds the `after` and invoke `onDone`/`onError` ones; the set keeps each once. */
function ownTransitions(node: AnyStateNode): AnyTransitionDefinition[] {
  return [
    ...new Set([...[...node.transitions.values()].flat(), ...node.after, ...(node.always ?? [])]),
  ];
}

/** Atomic states a transition defined on `node` can be taken from; a final state takes none. */
function atomicSources(node: AnyStateNode): AnyStateNode[] {
  if (node.type === 'final') return [];
  if (node.type === 'atomic') return [node];
  return Object.values(node.states).flatMap(atomicSources);
}

function sourceOf(
  transition: AnyTransitionDefinition,
  before: AnyMachineSnapshot | undefined,
): AnyStateNode {
  if (transition.source.type === 'atomic') return transition.source;
  const active = before?._nodes.find(
    (node) => node.type === 'atomic' && isDescendant(node, transition.source),
  );
  if (!active) throw new Error(`no active state under ${transition.source.id} for a transition`);
  return active;
}

function isDescendant(node: AnyStateNode, ancestor: AnyStateNode): boolean {
  for (let current: AnyStateNode | undefined = node; current; current = current.parent) {
    if (current === ancestor) return true;
  }
  return false;
}

/** Where a transition sits in its source's list: stable across `provide()` copies of a machine. */
function pairKey(source: AnyStateNode, transition: AnyTransitionDefinition): string {
  const owner = transition.source;
  const list =
    transition.eventType === ''
      ? (owner.always ?? [])
      : (owner.transitions.get(transition.eventType) ?? []);
  const index = list.indexOf(transition);
  if (index === -1)
    throw new Error(`transition on ${transition.eventType} not found in ${owner.id}`);
  return `${source.id}|${owner.id}|${transition.eventType}|${index}`;
}

function pairLabel(source: AnyStateNode, transition: AnyTransitionDefinition): string {
  const event = transition.eventType === '' ? 'always' : transition.eventType;
  const guard = typeof transition.guard === 'string' ? ` [${transition.guard}]` : '';
  const targets = transition.target?.map((node) => node.id).join(',') ?? '(stays)';
  const reenter = transition.reenter ? ' (re-enters)' : '';
  return `${source.id} --${event}${guard}--> ${targets}${reenter}`;
}

function percent(part: number, whole: number): string {
  return `${whole === 0 ? 100 : Math.floor((part / whole) * 100)}%`;
}
