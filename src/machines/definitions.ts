import type { AnyStateMachine } from 'xstate';
import { jobMachine } from './job.machine.js';
import { sessionMachine } from './session.machine.js';

/** A JSON value: what `GET /v1/machines` and `docs/machines/*.json` hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One machine, as Stately tools read it. */
export interface MachineDefinition {
  id: string;
  /**
   * The `createMachine` config with every function replaced by its name
   * (`{ "type": "xstate.assign" }` for an inline assign), so that it can be
   * pasted into Stately Studio. Run-time functions (`context`, `input`,
   * `params`, `output`) are left out: they depend on the job or session.
   */
  config: Json;
  /** The named implementations the runtime supplies with `.provide()`. */
  implementations: { actions: string[]; actors: string[]; guards: string[]; delays: string[] };
}

/** Keys whose function values are computed per actor and mean nothing in a diagram. */
const RUNTIME_ONLY = new Set(['context', 'input', 'params', 'output']);

/**
 * The definitions of every Baton machine, keyed by machine id. Pure: the
 * same JSON on every call, with no I/O.
 */
export function machineDefinitions(): Record<string, MachineDefinition> {
  const definitions: Record<string, MachineDefinition> = {};
  for (const machine of [jobMachine, sessionMachine]) {
    definitions[machine.id] = definitionOf(machine);
  }
  return definitions;
}

function definitionOf(machine: AnyStateMachine): MachineDefinition {
  const implementations = machine.implementations;
  return {
    id: machine.id,
    config: toJson(machine.config) ?? null,
    implementations: {
      actions: Object.keys(implementations.actions).sort(),
      actors: Object.keys(implementations.actors).sort(),
      guards: Object.keys(implementations.guards).sort(),
      delays: Object.keys(implementations.delays).sort(),
    },
  };
}

/** `undefined` means "leave the key out". */
function toJson(value: unknown, key?: string): Json | undefined {
  if (typeof value === 'function') {
    return key !== undefined && RUNTIME_ONLY.has(key) ? undefined : { type: functionName(value) };
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (Array.isArray(value)) return value.map((item: unknown) => toJson(item) ?? null);
  if (typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [name, item] of Object.entries(value)) {
      const json = toJson(item, name);
      if (json !== undefined) out[name] = json;
    }
    return out;
  }
  return undefined;
}

/** xstate's built-in actions carry their `type` (`xstate.assign`); others go by name. */
function functionName(fn: object): string {
  const type: unknown = 'type' in fn ? fn.type : undefined;
  if (typeof type === 'string') return type;
  const name: unknown = 'name' in fn ? fn.name : undefined;
  return typeof name === 'string' && name !== '' ? name : 'inline';
}
