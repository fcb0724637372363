/** A button that asks first, in a modal <dialog> (focus kept inside, Escape cancels). */
import type { ComponentChildren } from 'preact';
import { useRef } from 'preact/hooks';

export function ConfirmButton(props: { label: string; title: string; children: ComponentChildren; confirmLabel: string; onConfirm: () => void; danger?: boolean; disabled?: boolean }) {
  const dialog = useRef<HTMLDialogElement>(null);
  return (
    <>
      <button type="button" class={props.danger ? 'danger' : ''} disabled={props.disabled} onClick={() => dialog.current?.showModal()}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.title}>
        <form
          method="dialog"
          onSubmit={(e) => {
            if ((e.submitter as HTMLButtonElement | null)?.value === 'yes') props.onConfirm();
          }}
        >
          <h2>{props.title}</h2>
          <div>{props.children}</div>
          <div class="actions">
            <button value="no" type="submit" autofocus>
              Cancel
            </button>
            <button value="yes" type="submit" class={props.danger ? 'danger' : 'primary'}>
              {props.confirmLabel}
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
