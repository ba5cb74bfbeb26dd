/** A small typed event emitter that runs in browsers and Node alike. */

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

/** Listeners by event name; `Events` maps each name to its payload type. */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Call `listener` with every `name` event from now on; returns what removes it. */
  on<K extends keyof Events>(name: K, listener: (payload: Events[K]) => void): Unsubscribe {
    let set = this.listeners.get(name);
    if (set === undefined) this.listeners.set(name, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
    };
  }

  /** Call every listener of `name`; one that throws is reported and does not stop the others. */
  emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as (payload: Events[K]) => void)(payload);
      } catch (error) {
        // A listener's bug must not break the connection's bookkeeping: report it and go on.
        console.error(`syncd-client: a ${String(name)} listener failed:`, error);
      }
    }
  }
}
