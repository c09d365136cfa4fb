/**
 * The subscribers of one runtime event stream (instance changes, log lines). A listener that throws is skipped, so
 * one bad subscriber cannot break the runtime's supervision of processes or its informers.
 */
export class Listeners<T> {
  private readonly listeners = new Set<(value: T) => void>();

  /** Subscribes; returns the unsubscribe function the Runtime interface's onChange/onLog hand back. */
  add(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(value: T): void {
    for (const listener of this.listeners) {
      try {
        listener(value);
      } catch {
        // See the class comment.
      }
    }
  }
}
